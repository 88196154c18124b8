package template

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"
)

// BuildStatus is a build's state.
type BuildStatus string

// The states of a build, as E2B's API names them.
const (
	BuildBuilding BuildStatus = "building"
	BuildReady    BuildStatus = "ready"
	BuildError    BuildStatus = "error"
)

// BuildRecord is what is known of one build, kept in its directory as build.json.
type BuildRecord struct {
	BuildID    string      `json:"buildID"`
	TemplateID string      `json:"templateID"`
	Status     BuildStatus `json:"status"`
	// Reason says why a build failed.
	Reason     string     `json:"reason,omitempty"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	// Steps, CacheHits and Ran are as in Result, once the build is ready.
	Steps     int `json:"steps,omitempty"`
	CacheHits int `json:"cacheHits,omitempty"`
	Ran       int `json:"ran,omitempty"`
}

// LogEntry is one line of a build's log.
type LogEntry struct {
	Time    time.Time `json:"timestamp"`
	Level   string    `json:"level"` // "info" or "error"
	Message string    `json:"message"`
}

const (
	buildFile   = "build.json"
	buildLogs   = "log.jsonl"
	maxLogEntry = 16 << 10
)

var buildIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// newBuildID makes a random (version 4) UUID, the form E2B gives build ids.
func newBuildID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// buildRecord is a build's record on disk while the build runs.
type buildRecord struct {
	dir string
	rec BuildRecord
}

func (b *Builder) buildDir(id string) string { return filepath.Join(b.dir, buildsDir, id) }

// createBuild records a new build as building.
func (b *Builder) createBuild(id, name string) (*buildRecord, error) {
	dir := b.buildDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("build template %s: %w: build id %s is already used", name, ErrInvalid, id)
		}
		return nil, fmt.Errorf("build template %s: %w", name, err)
	}
	r := &buildRecord{dir: dir, rec: BuildRecord{BuildID: id, TemplateID: name, Status: BuildBuilding, StartedAt: time.Now().UTC()}}
	if err := writeJSON(filepath.Join(dir, buildFile), &r.rec); err != nil {
		return nil, fmt.Errorf("build template %s: %w", name, err)
	}
	return r, nil
}

// finish records the build's outcome.
func (r *buildRecord) finish(log *buildLog, res *Result, err error) {
	now := time.Now().UTC()
	r.rec.FinishedAt = &now
	if err != nil {
		log.errorf("build failed: %v", err)
		r.rec.Status, r.rec.Reason = BuildError, err.Error()
	} else {
		r.rec.Status = BuildReady
		r.rec.Steps, r.rec.CacheHits, r.rec.Ran = res.Steps, res.CacheHits, res.Ran
	}
	log.close()
	_ = writeJSON(filepath.Join(r.dir, buildFile), &r.rec)
}

// BuildStatus returns a build's record.
func (b *Builder) BuildStatus(buildID string) (*BuildRecord, error) {
	if !buildIDRE.MatchString(buildID) {
		return nil, fmt.Errorf("build %s: %w", buildID, ErrNotFound)
	}
	var rec BuildRecord
	if err := readJSON(filepath.Join(b.buildDir(buildID), buildFile), &rec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("build %s: %w", buildID, ErrNotFound)
		}
		return nil, fmt.Errorf("build %s: %w", buildID, err)
	}
	return &rec, nil
}

// Builds returns the builds of a template, newest first.
func (b *Builder) Builds(name string) ([]*BuildRecord, error) {
	ents, err := os.ReadDir(filepath.Join(b.dir, buildsDir))
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	var out []*BuildRecord
	for _, e := range ents {
		if rec, err := b.BuildStatus(e.Name()); err == nil && rec.TemplateID == name {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, c *BuildRecord) int { return c.StartedAt.Compare(a.StartedAt) })
	return out, nil
}

// BuildLogs returns up to limit (all when <= 0) entries of a build's log from the
// offset-th on (0-based), as E2B's logsOffset counts them. It can be called while the
// build runs.
func (b *Builder) BuildLogs(buildID string, offset, limit int) ([]LogEntry, error) {
	if _, err := b.BuildStatus(buildID); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(b.buildDir(buildID), buildLogs))
	if errors.Is(err, fs.ErrNotExist) {
		return []LogEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs of build %s: %w", buildID, err)
	}
	defer f.Close()
	out := []LogEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for i := 0; sc.Scan(); i++ {
		if i < offset {
			continue
		}
		var e LogEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			break // a line being written
		}
		out = append(out, e)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, sc.Err()
}

// buildLog writes a build's log: to the caller's writer as text, as produced, and to
// the build's log file as timestamped lines. Write takes raw command output.
type buildLog struct {
	mu      sync.Mutex
	w       io.Writer
	f       *os.File
	partial []byte
}

func (r *buildRecord) logger(w io.Writer) *buildLog {
	if w == nil {
		w = io.Discard
	}
	f, _ := os.OpenFile(filepath.Join(r.dir, buildLogs), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	return &buildLog{w: w, f: f}
}

// Write takes command output: it goes on as it comes, and into the file line by line.
func (l *buildLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(p) // a gone client does not fail the build
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.entry("info", string(bytes.TrimRight(l.partial[:i], "\r")))
		l.partial = l.partial[i+1:]
	}
	for len(l.partial) > maxLogEntry {
		l.entry("info", string(l.partial[:maxLogEntry]))
		l.partial = l.partial[maxLogEntry:]
	}
	return len(p), nil
}

func (l *buildLog) infof(format string, args ...any)  { l.line("info", fmt.Sprintf(format, args...)) }
func (l *buildLog) errorf(format string, args ...any) { l.line("error", fmt.Sprintf(format, args...)) }

// line writes one line of the builder's own.
func (l *buildLog) line(level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushPartial()
	_, _ = io.WriteString(l.w, msg+"\n")
	l.entry(level, msg)
}

func (l *buildLog) flushPartial() {
	if len(l.partial) > 0 {
		_, _ = l.w.Write([]byte("\n"))
		l.entry("info", string(l.partial))
		l.partial = nil
	}
}

func (l *buildLog) entry(level, msg string) {
	if l.f == nil {
		return
	}
	data, _ := json.Marshal(LogEntry{Time: time.Now().UTC(), Level: level, Message: msg})
	_, _ = l.f.Write(append(data, '\n'))
}

// close flushes the last partial line; later lines are dropped from the file.
func (l *buildLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushPartial()
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}
