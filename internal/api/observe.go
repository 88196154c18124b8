package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// Limits of the log routes, as E2B's.
const (
	// defaultLogLimit is the number of log entries when the query gives none.
	defaultLogLimit = 1000
	// maxLogLimitV2 is the most entries of one GET /v2/sandboxes/{id}/logs.
	maxLogLimitV2 = 1000
)

// logs answers GET /sandboxes/{id}/logs?start=<unix ms>&limit=<n>: the
// entries at or after start, oldest first, each twice: in logs, with the
// entry as a JSON object in line (what E2B's CLI parses), and in logEntries.
func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	q := controlplane.LogQuery{Limit: defaultLogLimit}
	start, err := queryMillis(r, "start")
	if err == nil {
		q.Start = start
		err = queryLimit(r, &q.Limit, controlplane.MaxLogLimit)
	}
	if err != nil {
		writeBad(w, err)
		return
	}
	entries, err := h.svc.Logs(r.Context(), teamOf(r), sandboxID(r), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := logsJSON{Logs: make([]logLineJSON, 0, len(entries)), LogEntries: make([]logEntryJSON, 0, len(entries))}
	for _, e := range entries {
		out.Logs = append(out.Logs, logLineJSON{Timestamp: e.Timestamp.UTC(), Line: entryLine(e)})
		out.LogEntries = append(out.LogEntries, toLogEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// logsV2 answers GET /v2/sandboxes/{id}/logs?cursor=<unix ms>&limit=<n>
// &direction=forward|backward&level=<l>&search=<text>, and start and end
// (unix ms) to bound the window on both sides. Backward (the default) gives
// the entries at or before cursor (the newest when absent), newest first;
// forward those at or after it, oldest first. level and search filter before
// the limit.
func (h *handler) logsV2(w http.ResponseWriter, r *http.Request) {
	q := controlplane.LogQuery{Limit: defaultLogLimit, Backward: true}
	var bounds [3]time.Time // start, end, cursor
	var err error
	for i, name := range []string{"start", "end", "cursor"} {
		if err == nil {
			bounds[i], err = queryMillis(r, name)
		}
	}
	if err == nil {
		err = queryLimit(r, &q.Limit, maxLogLimitV2)
	}
	if err == nil {
		switch d := r.URL.Query().Get("direction"); d {
		case "", "backward":
		case "forward":
			q.Backward = false
		default:
			err = badf("direction: must be forward or backward, got %q", d)
		}
	}
	if err == nil {
		q.Level = r.URL.Query().Get("level")
		q.Search = r.URL.Query().Get("search")
		if q.Level != "" && !slices.Contains(controlplane.LogLevels(), q.Level) {
			err = badf("level: must be one of %s, got %q", strings.Join(controlplane.LogLevels(), ", "), q.Level)
		} else if len(q.Search) > controlplane.MaxLogSearch {
			err = badf("search: must be at most %d bytes, got %d", controlplane.MaxLogSearch, len(q.Search))
		}
	}
	if err != nil {
		writeBad(w, err)
		return
	}
	q.Start, q.End = bounds[0], wholeMilli(bounds[1])
	if cursor := bounds[2]; !cursor.IsZero() {
		// The cursor is the window's edge in the direction of reading.
		if q.Backward && (q.End.IsZero() || wholeMilli(cursor).Before(q.End)) {
			q.End = wholeMilli(cursor)
		} else if !q.Backward && cursor.After(q.Start) {
			q.Start = cursor
		}
	}
	if !q.Start.IsZero() && !q.End.IsZero() && q.Start.After(q.End) {
		q = controlplane.LogQuery{} // an empty window: nothing, once the sandbox is known
	}
	entries, err := h.svc.Logs(r.Context(), teamOf(r), sandboxID(r), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := logsV2JSON{Logs: make([]logEntryJSON, 0, len(entries))}
	for _, e := range entries {
		out.Logs = append(out.Logs, toLogEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// logsV2JSON is the answer of GET /v2/sandboxes/{id}/logs.
type logsV2JSON struct {
	Logs []logEntryJSON `json:"logs"`
}

// toLogEntry is e in E2B's structured shape.
func toLogEntry(e controlplane.LogEntry) logEntryJSON {
	fields := e.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	return logEntryJSON{Timestamp: e.Timestamp.UTC(), Message: e.Message, Level: e.Level, Fields: fields}
}

// entryLine is e as the JSON object a line of E2B's v1 logs is: its fields,
// its level and its message.
func entryLine(e controlplane.LogEntry) string {
	obj := make(map[string]string, len(e.Fields)+2)
	for k, v := range e.Fields {
		obj[k] = v
	}
	obj["level"], obj["message"] = e.Level, e.Message
	b, err := json.Marshal(obj)
	if err != nil { // strings only: cannot happen
		return `{"level":"error","message":"unencodable log entry"}`
	}
	return string(b)
}

// queryMillis reads an optional Unix time in milliseconds (zero when absent
// or 0).
func queryMillis(r *http.Request, name string) (time.Time, error) {
	ms, ok, err := queryInt(r, name)
	switch {
	case err != nil:
		return time.Time{}, err
	case ok && ms < 0:
		return time.Time{}, badf("%s: must not be negative, got %d", name, ms)
	case !ok || ms == 0:
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}

// wholeMilli extends a millisecond bound to the end of its millisecond (zero
// stays zero): an inclusive end in whole milliseconds.
func wholeMilli(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(time.Millisecond - time.Nanosecond)
}

// queryLimit reads an optional limit of 0..most into *limit.
func queryLimit(r *http.Request, limit *int, most int) error {
	n, ok, err := queryInt(r, "limit")
	switch {
	case err != nil:
		return err
	case ok && (n < 0 || n > int64(most)):
		return badf("limit: must be between 0 and %d, got %d", most, n)
	case ok:
		*limit = int(n)
	}
	return nil
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
		out = append(out, toMetric(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// batchMetrics answers GET /sandboxes/metrics?sandbox_ids=a,b,c: the newest
// sample of each of the caller's sandboxes among those, by ID; the others
// are left out.
func (h *handler) batchMetrics(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query()["sandbox_ids"]
	var ids []string
	for _, v := range raw {
		for _, id := range strings.Split(v, ",") {
			id = strings.TrimSpace(id)
			switch {
			case id == "":
				writeBad(w, badf("sandbox_ids: an empty sandbox ID in %q", v))
				return
			case slices.Contains(ids, id):
				writeBad(w, badf("sandbox_ids: %s is given twice", id))
				return
			}
			ids = append(ids, id)
		}
	}
	switch {
	case len(raw) == 0:
		writeBad(w, badf("sandbox_ids: required, a comma-separated list of sandbox IDs"))
		return
	case len(ids) > controlplane.MaxMetricsSandboxes:
		writeBad(w, badf("sandbox_ids: Too many sandboxes requested, maximum is %d", controlplane.MaxMetricsSandboxes))
		return
	}
	latest, err := h.svc.LatestMetrics(r.Context(), teamOf(r), ids)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := sandboxesMetricsJSON{Sandboxes: make(map[string]metricJSON, len(latest))}
	for id, m := range latest {
		out.Sandboxes[id] = toMetric(m)
	}
	writeJSON(w, http.StatusOK, out)
}

// sandboxesMetricsJSON is the answer of GET /sandboxes/metrics.
type sandboxesMetricsJSON struct {
	Sandboxes map[string]metricJSON `json:"sandboxes"`
}

// toMetric is m in E2B's shape: sizes in bytes (the CLI prints them in MiB).
func toMetric(m store.Metric) metricJSON {
	return metricJSON{
		Timestamp: m.Timestamp.UTC(), TimestampUnix: m.Timestamp.Unix(),
		CPUCount: m.CPUCount, CPUUsedPct: m.CPUUsedPct,
		MemUsed: m.MemUsed, MemTotal: m.MemTotal, MemCache: m.MemCache,
		DiskUsed: m.DiskUsed, DiskTotal: m.DiskTotal,
	}
}
