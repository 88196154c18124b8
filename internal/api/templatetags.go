package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"
)

// aliasJSON is E2B's TemplateAliasResponse.
type aliasJSON struct {
	TemplateID string `json:"templateID"`
	Public     bool   `json:"public"`
}

// templateAlias answers GET /templates/aliases/{alias} (a name or
// name:tag): the template the caller may use by it, or 404.
func (h *handler) templateAlias(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	raw, err := url.PathUnescape(chi.URLParam(r, "alias"))
	if err != nil {
		writeBad(w, badf("alias: %v", err))
		return
	}
	name, tag, err := parseName("alias", raw, p.TeamSlug)
	if err != nil {
		writeBad(w, err)
		return
	}
	if tag != "" {
		name += ":" + tag
	}
	t, err := h.templates.TemplateByAlias(r.Context(), teamOf(r), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, aliasJSON{TemplateID: t.ID, Public: t.Public})
}

// tagsBody is the body of the tags routes: target (POST) or name (DELETE).
type tagsBody struct {
	Target *string  `json:"target"`
	Name   *string  `json:"name"`
	Tags   []string `json:"tags"`
}

// assignedTagsJSON answers POST /templates/tags.
type assignedTagsJSON struct {
	Tags    []string `json:"tags"`
	BuildID string   `json:"buildID"`
}

// assignTags answers POST /templates/tags: 201.
func (h *handler) assignTags(w http.ResponseWriter, r *http.Request) {
	var body tagsBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	if body.Target == nil || *body.Target == "" {
		writeBad(w, badf("target: required (name:tag)"))
		return
	}
	p, _ := PrincipalFrom(r.Context())
	name, tag, err := parseName("target", *body.Target, p.TeamSlug)
	if err != nil {
		writeBad(w, err)
		return
	}
	if tag != "" {
		name += ":" + tag
	}
	build, tags, err := h.templates.AssignTemplateTags(r.Context(), teamOf(r), name, body.Tags)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, assignedTagsJSON{Tags: tags, BuildID: build})
}

// removeTags answers DELETE /templates/tags: 204.
func (h *handler) removeTags(w http.ResponseWriter, r *http.Request) {
	var body tagsBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	if body.Name == nil || *body.Name == "" {
		writeBad(w, badf("name: required"))
		return
	}
	name := strings.ToLower(strings.TrimSpace(*body.Name))
	if p, _ := PrincipalFrom(r.Context()); strings.HasPrefix(name, p.TeamSlug+"/") {
		name = strings.TrimPrefix(name, p.TeamSlug+"/")
	}
	if err := h.templates.RemoveTemplateTags(r.Context(), teamOf(r), name, body.Tags); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// tagJSON is E2B's TemplateTag.
type tagJSON struct {
	Tag       string `json:"tag"`
	BuildID   string `json:"buildID"`
	CreatedAt string `json:"createdAt"`
}

// templateTags answers GET /templates/{templateID}/tags.
func (h *handler) templateTags(w http.ResponseWriter, r *http.Request) {
	tags, err := h.templates.TemplateTags(r.Context(), teamOf(r), templateID(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]tagJSON, 0, len(tags))
	for _, t := range tags {
		out = append(out, tagJSON{Tag: t.Tag, BuildID: t.BuildID, CreatedAt: t.CreatedAt.UTC().Format(rfc3339Milli)})
	}
	writeJSON(w, http.StatusOK, out)
}

// rfc3339Milli is the time form of E2B's answers.
const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"
