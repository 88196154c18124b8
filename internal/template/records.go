package template

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// BuildStatus is a build's state.
type BuildStatus string

// The states of a build, as E2B's API names them.
const (
	// BuildWaiting is a build reserved (Reserve) and not started yet.
	BuildWaiting  BuildStatus = "waiting"
	BuildBuilding BuildStatus = "building"
	BuildReady    BuildStatus = "ready"
	BuildError    BuildStatus = "error"
)

// WaitingTimeout is how long a reserved build may wait to be started: past
// it, it is failed, so that a client that never starts it frees its place.
const WaitingTimeout = time.Hour

// BuildRecord is what is known of one build, kept in its directory as build.json.
type BuildRecord struct {
	BuildID    string      `json:"buildID"`
	TemplateID string      `json:"templateID"`
	Status     BuildStatus `json:"status"`
	// Reason says why a build failed; ReasonStep at which step, as
	// StepError names it.
	Reason     string     `json:"reason,omitempty"`
	ReasonStep string     `json:"reasonStep,omitempty"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	// Steps, CacheHits and Ran are as in Result, once the build is ready.
	Steps     int `json:"steps,omitempty"`
	CacheHits int `json:"cacheHits,omitempty"`
	Ran       int `json:"ran,omitempty"`
	// CPUCount, MemoryMB and DiskSizeMB size the build's sandboxes, and Tags
	// are the tags it gets; set by Reserve (for Start to use), and for every
	// build once it is ready.
	CPUCount   int      `json:"cpuCount,omitempty"`
	MemoryMB   int      `json:"memoryMB,omitempty"`
	DiskSizeMB int      `json:"diskSizeMB,omitempty"`
	Tags       []string `json:"tags,omitempty"`
}

// LogEntry is one line of a build's log.
type LogEntry struct {
	Time    time.Time `json:"timestamp"`
	Level   string    `json:"level"` // "info" or "error"
	Message string    `json:"message"`
	// Step is the step the line belongs to, named as StepError names it.
	Step string `json:"step,omitempty"`
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

// createBuild records a new build as status (building, or waiting for
// Reserve).
func (b *Builder) createBuild(id, name string, status BuildStatus) (*buildRecord, error) {
	dir := b.buildDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("build template %s: %w: build id %s is already used", name, ErrInvalid, id)
		}
		return nil, fmt.Errorf("build template %s: %w", name, err)
	}
	r := &buildRecord{dir: dir, rec: BuildRecord{BuildID: id, TemplateID: name, Status: status, StartedAt: time.Now().UTC()}}
	if err := writeJSON(filepath.Join(dir, buildFile), &r.rec); err != nil {
		return nil, fmt.Errorf("build template %s: %w", name, err)
	}
	return r, nil
}

// startReserved turns the waiting build id of template name into a running
// one and returns its record; ErrInvalid when it is not waiting.
func (b *Builder) startReserved(id, name string) (*buildRecord, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rec, err := b.BuildStatus(id)
	if err != nil {
		return nil, fmt.Errorf("build template %s: %w", name, err)
	}
	if rec.TemplateID != name {
		return nil, fmt.Errorf("build template %s: build %s: %w", name, id, ErrNotFound)
	}
	if rec.Status != BuildWaiting {
		return nil, fmt.Errorf("build template %s: %w: build %s is not waiting to start (it is %s)", name, ErrInvalid, id, rec.Status)
	}
	rec.Status, rec.StartedAt = BuildBuilding, time.Now().UTC()
	r := &buildRecord{dir: b.buildDir(id), rec: *rec}
	if err := writeJSON(filepath.Join(r.dir, buildFile), &r.rec); err != nil {
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
		var se *StepError
		if errors.As(err, &se) {
			r.rec.ReasonStep = se.Step
		}
	} else {
		r.rec.Status = BuildReady
		r.rec.Steps, r.rec.CacheHits, r.rec.Ran = res.Steps, res.CacheHits, res.Ran
		if m := res.Metadata; m != nil {
			r.rec.CPUCount, r.rec.MemoryMB, r.rec.DiskSizeMB = m.CPUCount, m.MemoryMB, m.DiskSizeMB
		}
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
	if rec.Status == BuildWaiting && time.Since(rec.StartedAt) > WaitingTimeout {
		now := time.Now().UTC()
		rec.Status, rec.FinishedAt = BuildError, &now
		rec.Reason = fmt.Sprintf("the build was never started: it waited %s", WaitingTimeout)
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
