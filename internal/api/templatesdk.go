package api

import (
	"math"
	"net/http"
	"strings"

	"lelantos.dev/lelantos/internal/controlplane"
)

// E2B's build API, as the e2b SDK's Template.build drives it: POST
// /v3/templates asks for a build, GET .../files/{hash} gives each COPY
// step's upload link (served by this API: uploadFile), POST
// /v2/templates/{templateID}/builds/{buildID} starts the build with its
// steps, and the build status route reports it.

// buildRequestV3 is the body of POST /v3/templates.
type buildRequestV3 struct {
	Name *string `json:"name"`
	// Alias is the deprecated form of Name; TeamID is deprecated and
	// ignored (the key's team is the caller's).
	Alias         *string  `json:"alias"`
	Tags          []string `json:"tags"`
	CPUCount      *int64   `json:"cpuCount"`
	MemoryMB      *int64   `json:"memoryMB"`
	MinFreeDiskMB *int64   `json:"minFreeDiskMb"`
}

// buildRequestedJSON answers POST /v3/templates.
type buildRequestedJSON struct {
	TemplateID string   `json:"templateID"`
	BuildID    string   `json:"buildID"`
	Public     bool     `json:"public"`
	Names      []string `json:"names"`
	Tags       []string `json:"tags"`
	Aliases    []string `json:"aliases"`
}

// parseName reads E2B's name form: [namespace/]name[:tag], trimmed and
// lower-cased; the namespace must be the caller's team slug.
func parseName(field, raw, teamSlug string) (name, tag string, err error) {
	name = strings.ToLower(strings.TrimSpace(raw))
	if ns, rest, ok := strings.Cut(name, "/"); ok {
		if ns != teamSlug {
			return "", "", badf("%s: namespace %q is not your team's (%q)", field, ns, teamSlug)
		}
		name = rest
	}
	name, tag = controlplane.SplitTag(name)
	if name == "" {
		return "", "", badf("%s: Name is required", field)
	}
	if strings.Contains(raw, ":") && tag == "" {
		return "", "", badf("%s: an empty tag after ':'", field)
	}
	return name, tag, nil
}

// requestBuild answers POST /v3/templates: 202 with the template's ID and
// the build's, which then waits for its files and its start.
func (h *handler) requestBuild(w http.ResponseWriter, r *http.Request) {
	var body buildRequestV3
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	raw := ""
	switch {
	case body.Name != nil:
		raw = *body.Name
	case body.Alias != nil:
		raw = *body.Alias
	default:
		writeBad(w, badf("name: Name is required"))
		return
	}
	p, _ := PrincipalFrom(r.Context())
	name, tag, err := parseName("name", raw, p.TeamSlug)
	if err != nil {
		writeBad(w, err)
		return
	}
	req := controlplane.BuildReservation{Name: name, Tags: body.Tags}
	if tag != "" {
		req.Tags = append([]string{tag}, body.Tags...)
	}
	for _, f := range []struct {
		name string
		v    *int64
		dst  *int
	}{{"cpuCount", body.CPUCount, &req.CPUCount}, {"memoryMB", body.MemoryMB, &req.MemoryMB}, {"minFreeDiskMb", body.MinFreeDiskMB, &req.DiskSizeMB}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 || *f.v > math.MaxInt32 {
			writeBad(w, badf("%s: out of range, got %d", f.name, *f.v))
			return
		}
		*f.dst = int(*f.v)
	}
	if req.DiskSizeMB > 0 && req.DiskSizeMB < controlplane.MinTemplateDiskMB {
		req.DiskSizeMB = controlplane.MinTemplateDiskMB // the smallest disk a sandbox gets
	}
	res, err := h.templates.RequestTemplateBuild(r.Context(), teamOf(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, buildRequestedJSON{TemplateID: res.TemplateID, BuildID: res.BuildID, Public: res.Public,
		Names: res.Names, Tags: res.Tags, Aliases: res.Aliases})
}

// stepJSON is E2B's TemplateStep; the SDK's extra keys (forceUpload,
// resolveSymlinks, gzip) are ignored.
type stepJSON struct {
	Type      *string  `json:"type"`
	Args      []string `json:"args"`
	FilesHash *string  `json:"filesHash"`
	Force     *bool    `json:"force"`
}

// registryJSON is E2B's FromImageRegistry, credentials in clear.
type registryJSON struct {
	Type               string `json:"type"`
	Username           string `json:"username"`
	Password           string `json:"password"`
	ServiceAccountJSON string `json:"serviceAccountJson"`
}

// buildStartV2 is the body of POST /v2/templates/{templateID}/builds/{buildID}.
type buildStartV2 struct {
	FromImage         *string       `json:"fromImage"`
	FromTemplate      *string       `json:"fromTemplate"`
	FromImageRegistry *registryJSON `json:"fromImageRegistry"`
	Force             *bool         `json:"force"`
	Steps             []stepJSON    `json:"steps"`
	StartCmd          *string       `json:"startCmd"`
	ReadyCmd          *string       `json:"readyCmd"`
}

// specOf checks the form of a start body; the builder checks the steps.
func specOf(b *buildStartV2) (controlplane.TemplateSpec, error) {
	var spec controlplane.TemplateSpec
	if b.FromImage != nil {
		spec.FromImage = strings.TrimSpace(*b.FromImage)
	}
	if b.FromTemplate != nil {
		spec.FromTemplate = strings.TrimSpace(*b.FromTemplate)
	}
	if (spec.FromImage == "") == (spec.FromTemplate == "") {
		return spec, badf("fromImage: exactly one of fromImage and fromTemplate must be given and non-empty")
	}
	if b.Force != nil {
		spec.Force = *b.Force
	}
	if reg := b.FromImageRegistry; reg != nil {
		if spec.FromImage == "" {
			return spec, badf("fromImageRegistry: needs fromImage")
		}
		switch reg.Type {
		case "registry":
			if reg.Username == "" || reg.Password == "" {
				return spec, badf("fromImageRegistry: type registry needs a username and a password")
			}
			spec.Registry = &controlplane.RegistryCredentials{Username: reg.Username, Password: reg.Password}
		case "gcp":
			if reg.ServiceAccountJSON == "" {
				return spec, badf("fromImageRegistry: type gcp needs serviceAccountJson")
			}
			// Google's registries take the key itself as a password.
			spec.Registry = &controlplane.RegistryCredentials{Username: "_json_key", Password: reg.ServiceAccountJSON}
		case "aws":
			return spec, badf("fromImageRegistry: type aws is not supported: give type registry with the user name AWS and the password `aws ecr get-login-password` prints")
		default:
			return spec, badf("fromImageRegistry.type: want registry, gcp or aws, got %q", reg.Type)
		}
	}
	for i, s := range b.Steps {
		if s.Type == nil || *s.Type == "" {
			return spec, badf("steps[%d].type: required", i)
		}
		st := controlplane.TemplateStep{Type: *s.Type, Args: s.Args}
		if s.FilesHash != nil {
			st.FilesHash = *s.FilesHash
		}
		if s.Force != nil {
			st.Force = *s.Force
		}
		spec.Steps = append(spec.Steps, st)
	}
	return spec, nil
}

// startBuild answers POST /v2/templates/{templateID}/builds/{buildID}: the
// build starts, 202 with no body.
func (h *handler) startBuild(w http.ResponseWriter, r *http.Request) {
	var body buildStartV2
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	spec, err := specOf(&body)
	if err != nil {
		writeBad(w, err)
		return
	}
	var start, ready string
	if body.StartCmd != nil {
		start = *body.StartCmd
	}
	if body.ReadyCmd != nil {
		ready = *body.ReadyCmd
	}
	if err := h.templates.StartTemplateBuild(r.Context(), teamOf(r), templateID(r), buildID(r), spec, start, ready); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}
