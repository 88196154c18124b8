package api

import (
	"net/http"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
)

// defaultLogLimit is the number of log lines when the query gives none.
const defaultLogLimit = 1000

// logs answers GET /sandboxes/{id}/logs?start=<unix ms>&limit=<n>.
func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	startMs, hasStart, err := queryInt(r, "start")
	if err == nil && startMs < 0 {
		err = badf("start: must not be negative, got %d", startMs)
	}
	if err != nil {
		writeBad(w, err)
		return
	}
	limit, hasLimit, err := queryInt(r, "limit")
	if err == nil && hasLimit && (limit < 0 || limit > controlplane.MaxLogLimit) {
		err = badf("limit: must be between 0 and %d, got %d", controlplane.MaxLogLimit, limit)
	}
	if err != nil {
		writeBad(w, err)
		return
	}
	if !hasLimit {
		limit = defaultLogLimit
	}
	var start time.Time
	if hasStart && startMs > 0 {
		start = time.UnixMilli(startMs)
	}
	lines, err := h.svc.Logs(r.Context(), teamOf(r), sandboxID(r), start, int(limit))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := logsJSON{Logs: make([]logLineJSON, 0, len(lines)), LogEntries: make([]logEntryJSON, 0, len(lines))}
	for _, l := range lines {
		ts := l.Timestamp.UTC()
		out.Logs = append(out.Logs, logLineJSON{Timestamp: ts, Line: l.Line})
		out.LogEntries = append(out.LogEntries, logEntryJSON{Timestamp: ts, Message: l.Line, Level: "info", Fields: map[string]string{}})
	}
	writeJSON(w, http.StatusOK, out)
}

// metrics answers GET /sandboxes/{id}/metrics?start=<unix s>&end=<unix s>.
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	var bounds [2]time.Time
	for i, name := range []string{"start", "end"} {
		v, ok, err := queryInt(r, name)
		if err == nil && ok && v < 0 {
			err = badf("%s: must not be negative, got %d", name, v)
		}
		if err != nil {
			writeBad(w, err)
			return
		}
		if ok && v > 0 {
			bounds[i] = time.Unix(v, 0)
			if name == "end" {
				bounds[i] = time.Unix(v+1, 0).Add(-time.Nanosecond) // the whole second
			}
		}
	}
	if !bounds[0].IsZero() && !bounds[1].IsZero() && bounds[0].After(bounds[1]) {
		writeBad(w, badf("start: must not be after end"))
		return
	}
	ms, err := h.svc.Metrics(r.Context(), teamOf(r), sandboxID(r), bounds[0], bounds[1])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]metricJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, metricJSON{
			Timestamp: m.Timestamp.UTC(), TimestampUnix: m.Timestamp.Unix(),
			CPUCount: m.CPUCount, CPUUsedPct: m.CPUUsedPct,
			MemUsed: m.MemUsed, MemTotal: m.MemTotal, MemCache: m.MemCache,
			DiskUsed: m.DiskUsed, DiskTotal: m.DiskTotal,
		})
	}
	writeJSON(w, http.StatusOK, out)
}
