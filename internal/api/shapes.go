package api

import (
	"encoding/json"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// volumeMount is an entry of volumeMounts: a volume of the team, by name, and
// where the sandbox sees it.
type volumeMount struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// sandboxJSON is the Sandbox shape: the answer to create, resume, connect.
type sandboxJSON struct {
	TemplateID         string  `json:"templateID"`
	SandboxID          string  `json:"sandboxID"`
	Alias              string  `json:"alias,omitempty"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
	WorkloadType       string  `json:"workloadType"`
	RuntimeClass       string  `json:"runtimeClass"`
}

// listedJSON is the ListedSandbox shape of the listings.
type listedJSON struct {
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
	VolumeMounts        []volumeMount     `json:"volumeMounts"`
	WorkloadType        string            `json:"workloadType"`
	RuntimeClass        string            `json:"runtimeClass"`
}

// lifecycleJSON is what happens to a sandbox when its time is up.
type lifecycleJSON struct {
	OnTimeout  string `json:"onTimeout"`
	AutoResume bool   `json:"autoResume"`
}

// detailJSON is the SandboxDetail shape of GET /sandboxes/{id}.
type detailJSON struct {
	listedJSON
	EnvdAccessToken string          `json:"envdAccessToken"`
	Domain          *string         `json:"domain"`
	Network         json.RawMessage `json:"network,omitempty"`
	Lifecycle       lifecycleJSON   `json:"lifecycle"`
}

// logLineJSON is one line of GET /sandboxes/{id}/logs.
type logLineJSON struct {
	Timestamp time.Time `json:"timestamp"`
	Line      string    `json:"line"`
}

// logEntryJSON is the structured form of a line (newer clients read it).
type logEntryJSON struct {
	Timestamp time.Time         `json:"timestamp"`
	Message   string            `json:"message"`
	Level     string            `json:"level"`
	Fields    map[string]string `json:"fields"`
}

// logsJSON is the answer of GET /sandboxes/{id}/logs.
type logsJSON struct {
	Logs       []logLineJSON  `json:"logs"`
	LogEntries []logEntryJSON `json:"logEntries"`
}

// metricJSON is one entry of GET /sandboxes/{id}/metrics.
type metricJSON struct {
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

// clientState is the state clients see: transitional states show as the
// state they lead from or to.
func clientState(state string) string {
	switch state {
	case controlplane.StatePaused, controlplane.StatePausing:
		return controlplane.StatePaused
	default:
		return controlplane.StateRunning
	}
}

// optional returns nil for "" (JSON null), else &s.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// toSandbox builds the Sandbox shape.
func toSandbox(sb *store.Sandbox, domain string) sandboxJSON {
	return sandboxJSON{
		TemplateID:         sb.TemplateID,
		SandboxID:          sb.ID,
		Alias:              sb.Alias,
		ClientID:           sb.ClientID,
		EnvdVersion:        sb.EnvdVersion,
		EnvdAccessToken:    sb.EnvdAccessToken,
		TrafficAccessToken: optional(sb.TrafficAccessToken),
		Domain:             optional(domain),
		WorkloadType:       sb.WorkloadType,
		RuntimeClass:       sb.RuntimeClass,
	}
}

// toListed builds the ListedSandbox shape.
func toListed(sb *store.Sandbox) listedJSON {
	md := sb.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return listedJSON{
		TemplateID:          sb.TemplateID,
		Alias:               sb.Alias,
		SandboxID:           sb.ID,
		ClientID:            sb.ClientID,
		StartedAt:           sb.StartedAt.UTC(),
		EndAt:               sb.EndAt.UTC(),
		CPUCount:            sb.CPUCount,
		MemoryMB:            sb.MemoryMB,
		DiskSizeMB:          sb.DiskSizeMB,
		Metadata:            md,
		State:               clientState(sb.State),
		EnvdVersion:         sb.EnvdVersion,
		AllowInternetAccess: sb.AllowInternetAccess,
		VolumeMounts:        toVolumeMounts(sb.VolumeMounts),
		WorkloadType:        sb.WorkloadType,
		RuntimeClass:        sb.RuntimeClass,
	}
}

// toDetail builds the SandboxDetail shape.
func toDetail(sb *store.Sandbox, domain string) detailJSON {
	onTimeout := "kill"
	if sb.AutoPause {
		onTimeout = "pause"
	}
	var network json.RawMessage
	if len(sb.Network) > 0 && string(sb.Network) != "null" {
		network = sb.Network
	}
	return detailJSON{
		listedJSON:      toListed(sb),
		EnvdAccessToken: sb.EnvdAccessToken,
		Domain:          optional(domain),
		Network:         network,
		Lifecycle:       lifecycleJSON{OnTimeout: onTimeout, AutoResume: sb.AutoResume},
	}
}

// toListedAll converts a listing; never nil, so that it encodes as [].
func toListedAll(items []*store.Sandbox) []listedJSON {
	out := make([]listedJSON, 0, len(items))
	for _, sb := range items {
		out = append(out, toListed(sb))
	}
	return out
}
