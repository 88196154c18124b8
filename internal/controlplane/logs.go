package controlplane

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// Limits of a log query.
const (
	// MaxLogLimit is the most log entries one request returns.
	MaxLogLimit = 10000
	// MaxLogSearch is the longest search text, in bytes.
	MaxLogSearch = 256
)

// Log levels, least severe first, as E2B names them.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// LogLevels are the levels a log entry has, least severe first.
func LogLevels() []string { return []string{LevelDebug, LevelInfo, LevelWarn, LevelError} }

// Loggers of a sandbox's log entries (the "logger" field).
const (
	// LoggerLifecycle marks the control plane's and the node's lifecycle
	// events: created, paused, resumed, out of memory, ended...
	LoggerLifecycle = "lifecycle"
	// LoggerConsole marks the output of the sandbox's first process, its
	// daemon. Processes the daemon starts (the template's start command
	// among them) stream their output to their clients instead.
	LoggerConsole = "console"
)

// Fields every log entry carries, with E2B's names. A console line's own
// values cannot replace them.
const (
	FieldLogger    = "logger"
	FieldSandboxID = "sandboxID"
	FieldTeamID    = "teamID"
	FieldEnvID     = "envID" // the template
)

// LogQuery selects entries of a sandbox's log.
type LogQuery struct {
	// Start and End bound the entries' times, both inclusive; zero leaves
	// that side open.
	Start, End time.Time
	// Limit is the most entries, 0..MaxLogLimit (0 returns none).
	Limit int
	// Backward returns the newest first (from End); the default is oldest
	// first (from Start).
	Backward bool
	// Level, when set, keeps the entries at or above it (one of LogLevels).
	Level string
	// Search, when set, keeps the entries whose message contains it (case
	// sensitive, at most MaxLogSearch bytes).
	Search string
}

// LogEntry is an entry of a sandbox's log in E2B's shape.
type LogEntry struct {
	Timestamp time.Time
	// Level is one of LogLevels.
	Level   string
	Message string
	// Fields holds FieldLogger, FieldSandboxID, FieldTeamID and FieldEnvID,
	// and the other values of a structured console line.
	Fields map[string]string
}

// Logs returns the entries of sandbox id of team teamID that q selects: the
// control plane's lifecycle events merged by time with what the node keeps
// (its own events and the sandbox's console output). The logs of a dead or
// killed sandbox stay readable until its record is dropped.
func (s *Service) Logs(ctx context.Context, teamID, id string, q LogQuery) ([]LogEntry, error) {
	switch {
	case q.Limit < 0 || q.Limit > MaxLogLimit:
		return nil, invalidf("limit: must be between 0 and %d, got %d", MaxLogLimit, q.Limit)
	case q.Level != "" && !slices.Contains(LogLevels(), q.Level):
		return nil, invalidf("level: must be one of %s, got %q", strings.Join(LogLevels(), ", "), q.Level)
	case len(q.Search) > MaxLogSearch:
		return nil, invalidf("search: must be at most %d bytes, got %d", MaxLogSearch, len(q.Search))
	case !q.Start.IsZero() && !q.End.IsZero() && q.Start.After(q.End):
		return nil, invalidf("start: must not be after end")
	}
	if !validSandboxID(id) {
		return nil, notFound(id)
	}
	sb, err := s.store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && sb.TeamID != teamID) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, internal("read sandbox", err)
	}
	if q.Limit == 0 {
		return []LogEntry{}, nil
	}
	fields := map[string]string{FieldSandboxID: sb.ID, FieldTeamID: sb.TeamID, FieldEnvID: sb.TemplateID}
	events, err := s.eventEntries(ctx, id, q, fields)
	if err != nil {
		return nil, err
	}
	node := s.nodeEntries(ctx, sb.NodeID, id, q, fields)
	// Both are in q's direction: merge them, the control plane's events first
	// among equal times (last, backward).
	out := make([]LogEntry, 0, min(q.Limit, len(events)+len(node)))
	for len(out) < q.Limit && (len(events) > 0 || len(node) > 0) {
		takeEvent := len(node) == 0 || (len(events) > 0 && !q.Backward && !events[0].Timestamp.After(node[0].Timestamp)) ||
			(len(events) > 0 && q.Backward && events[0].Timestamp.After(node[0].Timestamp))
		if takeEvent {
			out, events = append(out, events[0]), events[1:]
		} else {
			out, node = append(out, node[0]), node[1:]
		}
	}
	return out, nil
}

// eventEntries returns the control plane's events of sandbox id that q
// selects, at most q.Limit, in q's direction. They are all at LevelInfo.
func (s *Service) eventEntries(ctx context.Context, id string, q LogQuery, fields map[string]string) ([]LogEntry, error) {
	if q.Level == LevelWarn || q.Level == LevelError {
		return nil, nil
	}
	fetch := 0 // all from Start: filters and direction apply here
	if !q.Backward && q.Search == "" && q.End.IsZero() {
		fetch = q.Limit
	}
	events, err := s.store.ListEvents(ctx, id, q.Start, fetch)
	if err != nil {
		return nil, internal("read sandbox events", err)
	}
	if q.Backward {
		slices.Reverse(events)
	}
	var out []LogEntry
	for _, e := range events {
		if (!q.End.IsZero() && e.Timestamp.After(q.End)) || (q.Search != "" && !strings.Contains(e.Line, q.Search)) {
			continue
		}
		out = append(out, LogEntry{Timestamp: e.Timestamp, Level: LevelInfo, Message: e.Line, Fields: withFields(nil, fields, LoggerLifecycle)})
		if len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// nodeEntries returns what the node keeps of sandbox id's log that q
// selects. A node that no longer holds the sandbox has nothing; one that
// fails to answer is logged, and the control plane's events are all there is.
func (s *Service) nodeEntries(ctx context.Context, nodeID, id string, q LogQuery, fields map[string]string) []LogEntry {
	node, err := s.nodeOf(ctx, nodeID)
	if err != nil {
		s.log.Warn("read sandbox logs from node", "sandbox", id, "err", err)
		return nil
	}
	req := &agentv1.SandboxLogsRequest{SandboxId: id, Limit: int32(q.Limit), Backward: q.Backward, MinLevel: q.Level, Search: q.Search}
	if !q.Start.IsZero() {
		req.Start = timestamppb.New(q.Start)
	}
	if !q.End.IsZero() {
		req.End = timestamppb.New(q.End)
	}
	resp, err := node.SandboxLogs(ctx, connect.NewRequest(req))
	switch {
	case connect.CodeOf(err) == connect.CodeNotFound:
		return nil
	case err != nil:
		s.log.Warn("read sandbox logs from node", "sandbox", id, "err", err)
		return nil
	}
	var out []LogEntry
	for _, l := range resp.Msg.GetLogs() {
		ts := l.GetTimestamp().AsTime()
		if (!q.Start.IsZero() && ts.Before(q.Start)) || (!q.End.IsZero() && ts.After(q.End)) {
			continue
		}
		e := LogEntry{Timestamp: ts, Level: l.GetLevel(), Message: l.GetMessage()}
		if !slices.Contains(LogLevels(), e.Level) {
			e.Level = LevelInfo
		}
		logger := LoggerConsole
		if l.GetSource() == agentv1.LogSource_LOG_SOURCE_EVENT {
			logger = LoggerLifecycle
		}
		e.Fields = withFields(l.GetFields(), fields, logger)
		out = append(out, e)
	}
	return out
}

// withFields returns own with the sandbox's fields and the logger over it.
func withFields(own, sandbox map[string]string, logger string) map[string]string {
	out := make(map[string]string, len(own)+len(sandbox)+1)
	for k, v := range own {
		out[k] = v
	}
	for k, v := range sandbox {
		out[k] = v
	}
	out[FieldLogger] = logger
	return out
}
