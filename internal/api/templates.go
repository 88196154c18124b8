package api

import (
	"context"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// Templates is what the template routes need from the control plane;
// *controlplane.Service implements it. Every method takes the caller's team.
type Templates interface {
	ListTemplates(ctx context.Context, teamID string) ([]*controlplane.TemplateInfo, error)
	GetTemplate(ctx context.Context, teamID, name string) (*controlplane.TemplateInfo, error)
	DeleteTemplate(ctx context.Context, teamID, name string) error
	BuildTemplate(ctx context.Context, teamID string, req controlplane.TemplateBuildRequest) (templateID, buildID string, err error)
	TemplateBuildStatus(ctx context.Context, teamID, templateID, buildID string) (*controlplane.TemplateBuild, error)
	TemplateBuildLogs(ctx context.Context, teamID, templateID, buildID string, offset, limit int) ([]controlplane.TemplateLogEntry, error)
	RequestTemplateBuild(ctx context.Context, teamID string, req controlplane.BuildReservation) (*controlplane.ReservedBuild, error)
	StartTemplateBuild(ctx context.Context, teamID, templateID, buildID string, spec controlplane.TemplateSpec, startCmd, readyCmd string) error
	TemplateFileUpload(ctx context.Context, teamID, templateID, hash string) (bool, error)
	PutTemplateFile(ctx context.Context, teamID, templateID, hash string, r io.Reader) error
	TemplateByAlias(ctx context.Context, teamID, alias string) (*store.Template, error)
	TemplateTags(ctx context.Context, teamID, templateID string) ([]controlplane.TemplateTag, error)
	AssignTemplateTags(ctx context.Context, teamID, target string, tags []string) (string, []string, error)
	RemoveTemplateTags(ctx context.Context, teamID, name string, tags []string) error
}

// maxBuildLogLimit is the most log entries one build status or logs request
// returns (E2B's limit).
const maxBuildLogLimit = 100

// templateID and buildID are the path parameters.
func templateID(r *http.Request) string { return pathParam(r, "templateID") }
func buildID(r *http.Request) string    { return chi.URLParam(r, "buildID") }

// listTemplates answers GET /templates.
func (h *handler) listTemplates(w http.ResponseWriter, r *http.Request) {
	infos, err := h.templates.ListTemplates(r.Context(), teamOf(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]templateJSON, 0, len(infos))
	for _, i := range infos {
		out = append(out, toTemplate(i))
	}
	writeJSON(w, http.StatusOK, out)
}

// getTemplate answers GET /templates/{templateID}: the template and its builds.
func (h *handler) getTemplate(w http.ResponseWriter, r *http.Request) {
	info, err := h.templates.GetTemplate(r.Context(), teamOf(r), templateID(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTemplateWithBuilds(info))
}

// deleteTemplate answers DELETE /templates/{templateID}: 204.
func (h *handler) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	if err := h.templates.DeleteTemplate(r.Context(), teamOf(r), templateID(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// buildStatus answers GET /templates/{templateID}/builds/{buildID}/status
// ?logsOffset=N&limit=M&level=L: the build's state and its log from entry N
// on (entries at or above level L when given).
func (h *handler) buildStatus(w http.ResponseWriter, r *http.Request) {
	offset, _, err := queryInt(r, "logsOffset")
	if err == nil && (offset < 0 || offset > math.MaxInt32) {
		err = badf("logsOffset: must be between 0 and %d, got %d", math.MaxInt32, offset)
	}
	if err != nil {
		writeBad(w, err)
		return
	}
	limit, level, err := logQuery(r)
	if err != nil {
		writeBad(w, err)
		return
	}
	// Status first: once it says finished, the log read next is complete.
	b, err := h.templates.TemplateBuildStatus(r.Context(), teamOf(r), templateID(r), buildID(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var entries []controlplane.TemplateLogEntry
	if limit > 0 {
		if level == "" {
			entries, err = h.templates.TemplateBuildLogs(r.Context(), teamOf(r), templateID(r), buildID(r), int(offset), limit)
		} else {
			entries, err = h.templates.TemplateBuildLogs(r.Context(), teamOf(r), templateID(r), buildID(r), 0, 0)
			entries = atLevel(entries, level)
			entries = entries[min(int(offset), len(entries)):]
			entries = entries[:min(limit, len(entries))]
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, toBuildInfo(b, entries))
}

// buildLogs answers GET /templates/{templateID}/builds/{buildID}/logs
// ?cursor=<unix ms>&limit=N&direction=forward|backward&level=L: forward,
// the entries at or after cursor, oldest first; backward, those at or
// before it (the newest when absent), newest first.
func (h *handler) buildLogs(w http.ResponseWriter, r *http.Request) {
	cursor, hasCursor, err := queryInt(r, "cursor")
	if err == nil && cursor < 0 {
		err = badf("cursor: must not be negative, got %d", cursor)
	}
	if err != nil {
		writeBad(w, err)
		return
	}
	limit, level, err := logQuery(r)
	if err != nil {
		writeBad(w, err)
		return
	}
	backward := false
	switch d := r.URL.Query().Get("direction"); d {
	case "", "forward":
	case "backward":
		backward = true
	default:
		writeBad(w, badf("direction: must be forward or backward, got %q", d))
		return
	}
	entries, err := h.templates.TemplateBuildLogs(r.Context(), teamOf(r), templateID(r), buildID(r), 0, 0)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	entries = atLevel(entries, level)
	at := time.UnixMilli(cursor)
	if backward {
		slices.Reverse(entries)
	}
	out := buildLogsJSON{Logs: []buildLogEntryJSON{}}
	for _, e := range entries {
		if len(out.Logs) == limit {
			break
		}
		if hasCursor && ((!backward && e.Timestamp.Before(at)) || (backward && e.Timestamp.After(at.Add(time.Millisecond-1)))) {
			continue
		}
		out.Logs = append(out.Logs, toBuildLogEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// logQuery reads the limit (0..100, default 100) and level of a build log
// query.
func logQuery(r *http.Request) (int, string, error) {
	limit, ok, err := queryInt(r, "limit")
	if err != nil {
		return 0, "", err
	}
	if !ok {
		limit = maxBuildLogLimit
	}
	if limit < 0 || limit > maxBuildLogLimit {
		return 0, "", badf("limit: must be between 0 and %d, got %d", maxBuildLogLimit, limit)
	}
	level := r.URL.Query().Get("level")
	if level != "" && !slices.Contains(logLevels, level) {
		return 0, "", badf("level: must be one of %s, got %q", strings.Join(logLevels, ", "), level)
	}
	return int(limit), level, nil
}

// logLevels are E2B's log levels, least severe first.
var logLevels = []string{"debug", "info", "warn", "error"}

// atLevel keeps the entries at or above level ("" keeps all).
func atLevel(entries []controlplane.TemplateLogEntry, level string) []controlplane.TemplateLogEntry {
	if level == "" {
		return entries
	}
	floor := slices.Index(logLevels, level)
	return slices.DeleteFunc(entries, func(e controlplane.TemplateLogEntry) bool {
		return slices.Index(logLevels, e.Level) < floor
	})
}
