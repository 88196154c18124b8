package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sandbox states as the API reports them.
const (
	StateRunning = "running"
	StatePaused  = "paused"
)

// Sandbox is the answer to create and resume.
type Sandbox struct {
	TemplateID         string  `json:"templateID"`
	SandboxID          string  `json:"sandboxID"`
	Alias              string  `json:"alias,omitempty"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken,omitempty"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
	WorkloadType       string  `json:"workloadType,omitempty"`
	RuntimeClass       string  `json:"runtimeClass,omitempty"`
}

// ListedSandbox is one entry of a listing.
type ListedSandbox struct {
	TemplateID          string            `json:"templateID"`
	Alias               string            `json:"alias,omitempty"`
	SandboxID           string            `json:"sandboxID"`
	ClientID            string            `json:"clientID"`
	StartedAt           time.Time         `json:"startedAt"`
	EndAt               time.Time         `json:"endAt"`
	CPUCount            int               `json:"cpuCount"`
	MemoryMB            int               `json:"memoryMB"`
	DiskSizeMB          int               `json:"diskSizeMB"`
	Metadata            map[string]string `json:"metadata"`
	State               string            `json:"state"`
	EnvdVersion         string            `json:"envdVersion"`
	AllowInternetAccess *bool             `json:"allowInternetAccess"`
	WorkloadType        string            `json:"workloadType,omitempty"`
	RuntimeClass        string            `json:"runtimeClass,omitempty"`
}

// Lifecycle is what happens to a sandbox when its time is up.
type Lifecycle struct {
	OnTimeout  string `json:"onTimeout"`
	AutoResume bool   `json:"autoResume"`
}

// SandboxDetail is the answer to GET /sandboxes/{id}.
type SandboxDetail struct {
	ListedSandbox
	EnvdAccessToken string          `json:"envdAccessToken,omitempty"`
	Domain          *string         `json:"domain"`
	Network         json.RawMessage `json:"network,omitempty"`
	Lifecycle       Lifecycle       `json:"lifecycle"`
}

// CreateRequest is the body of a create; only TemplateID is required.
type CreateRequest struct {
	TemplateID string `json:"templateID"`
	// Timeout is the sandbox's lifetime in seconds; the server's default
	// (300) when 0.
	Timeout  int               `json:"timeout,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	EnvVars  map[string]string `json:"envVars,omitempty"`
	// AutoPause pauses the sandbox at its timeout instead of killing it.
	AutoPause bool `json:"autoPause,omitempty"`
}

// ListOptions filter a listing.
type ListOptions struct {
	// States are the states listed; the server's default when empty.
	States []string
	// Metadata pairs must all match.
	Metadata map[string]string
	// PageSize is the number of sandboxes asked per request (1..100); the
	// server's default (100) when 0.
	PageSize int
}

// LogLine is one line of a sandbox's log.
type LogLine struct {
	Timestamp time.Time `json:"timestamp"`
	Line      string    `json:"line"`
}

// Metric is one sample of a sandbox's resource use; sizes in bytes.
type Metric struct {
	Timestamp     time.Time `json:"timestamp"`
	TimestampUnix int64     `json:"timestampUnix"`
	CPUCount      int       `json:"cpuCount"`
	CPUUsedPct    float64   `json:"cpuUsedPct"`
	MemUsed       int64     `json:"memUsed"`
	MemTotal      int64     `json:"memTotal"`
	MemCache      int64     `json:"memCache"`
	DiskUsed      int64     `json:"diskUsed"`
	DiskTotal     int64     `json:"diskTotal"`
}

// sandboxPath is the API path of sandbox id, with suffix appended.
func sandboxPath(id, suffix string) string { return "/sandboxes/" + url.PathEscape(id) + suffix }

// Create starts a sandbox.
func (c *Client) Create(ctx context.Context, req CreateRequest) (*Sandbox, error) {
	var sb Sandbox
	if err := c.postJSON(ctx, "/v2/sandboxes", req, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}

// Get returns a sandbox's details.
func (c *Client) Get(ctx context.Context, id string) (*SandboxDetail, error) {
	var d SandboxDetail
	if err := c.Do(ctx, http.MethodGet, sandboxPath(id, ""), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// List returns every sandbox matching opts, following X-Next-Token from
// page to page.
func (c *Client) List(ctx context.Context, opts ListOptions) ([]ListedSandbox, error) {
	q := url.Values{}
	if len(opts.States) > 0 {
		q.Set("state", strings.Join(opts.States, ","))
	}
	if len(opts.Metadata) > 0 {
		q.Set("metadata", MetadataQuery(opts.Metadata))
	}
	if opts.PageSize > 0 {
		q.Set("limit", strconv.Itoa(opts.PageSize))
	}
	all := []ListedSandbox{}
	seen := map[string]bool{}
	for {
		var page []ListedSandbox
		h, err := c.doHeader(ctx, http.MethodGet, "/v2/sandboxes?"+q.Encode(), nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		next := h.Get("X-Next-Token")
		if next == "" {
			return all, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("list sandboxes: the server repeated page token %q", next)
		}
		seen[next] = true
		q.Set("nextToken", next)
	}
}

// MetadataQuery encodes a metadata filter as the e2b clients do: each key
// and value URL-encoded, joined as k=v&k2=v2 (the query encoding then
// escapes that string once more).
func MetadataQuery(md map[string]string) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	pairs := make([]string, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, esc(k)+"="+esc(md[k]))
	}
	return strings.Join(pairs, "&")
}

// Kill ends a sandbox.
func (c *Client) Kill(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, sandboxPath(id, ""), nil, nil)
}

// Pause pauses a running sandbox, keeping its memory.
func (c *Client) Pause(ctx context.Context, id string) error {
	return c.postJSON(ctx, sandboxPath(id, "/pause"), struct{}{}, nil)
}

// Resume resumes a paused sandbox; timeout (seconds) sets its new lifetime,
// the server's default when 0.
func (c *Client) Resume(ctx context.Context, id string, timeout int) (*Sandbox, error) {
	body := map[string]int{}
	if timeout > 0 {
		body["timeout"] = timeout
	}
	var sb Sandbox
	if err := c.postJSON(ctx, sandboxPath(id, "/resume"), body, &sb); err != nil {
		return nil, err
	}
	return &sb, nil
}

// Logs returns up to limit lines of a sandbox's log from start on (all
// when start is zero), oldest first: each entry's message (the API's lines
// are JSON objects, for E2B's CLI).
func (c *Client) Logs(ctx context.Context, id string, start time.Time, limit int) ([]LogLine, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if !start.IsZero() {
		q.Set("start", strconv.FormatInt(start.UnixMilli(), 10))
	}
	var out struct {
		Entries []struct {
			Timestamp time.Time `json:"timestamp"`
			Message   string    `json:"message"`
		} `json:"logEntries"`
	}
	if err := c.Do(ctx, http.MethodGet, sandboxPath(id, "/logs?"+q.Encode()), nil, &out); err != nil {
		return nil, err
	}
	lines := make([]LogLine, 0, len(out.Entries))
	for _, e := range out.Entries {
		lines = append(lines, LogLine{Timestamp: e.Timestamp, Line: e.Message})
	}
	return lines, nil
}

// Metrics returns a sandbox's resource samples between start and end (zero
// for no bound), whole seconds.
func (c *Client) Metrics(ctx context.Context, id string, start, end time.Time) ([]Metric, error) {
	q := url.Values{}
	if !start.IsZero() {
		q.Set("start", strconv.FormatInt(start.Unix(), 10))
	}
	if !end.IsZero() {
		q.Set("end", strconv.FormatInt(end.Unix(), 10))
	}
	var out []Metric
	if err := c.Do(ctx, http.MethodGet, sandboxPath(id, "/metrics?"+q.Encode()), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// OpenDaemon looks sandbox id up and returns a handle on its daemon. A paused
// sandbox is an error wrapping ErrPaused; an unknown one an *APIError
// matching ErrNotFound.
func (c *Client) OpenDaemon(ctx context.Context, id string) (*Daemon, error) {
	d, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.State == StatePaused {
		return nil, fmt.Errorf("sandbox %q: %w", id, ErrPaused)
	}
	domain := ""
	if d.Domain != nil {
		domain = *d.Domain
	}
	return c.Daemon(d.SandboxID, d.EnvdAccessToken, domain)
}
