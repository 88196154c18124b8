package api

import (
	"encoding/json"
	"math"
	"net/http"

	"github.com/go-chi/chi/v5"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// nodeDiskJSON is E2B's DiskMetrics of a node: the file system of its data
// directory.
type nodeDiskJSON struct {
	MountPoint     string `json:"mountPoint"`
	Device         string `json:"device"`
	FilesystemType string `json:"filesystemType"`
	UsedBytes      int64  `json:"usedBytes"`
	TotalBytes     int64  `json:"totalBytes"`
}

// nodeMetricsJSON is E2B's NodeMetrics.
type nodeMetricsJSON struct {
	AllocatedCPU         int            `json:"allocatedCPU"`
	AllocatedMemoryBytes int64          `json:"allocatedMemoryBytes"`
	CPUPercent           int            `json:"cpuPercent"`
	CPUCount             int            `json:"cpuCount"`
	MemoryUsedBytes      int64          `json:"memoryUsedBytes"`
	MemoryTotalBytes     int64          `json:"memoryTotalBytes"`
	Disks                []nodeDiskJSON `json:"disks"`
}

// nodeJSON is E2B's Node, with the counts of paused and pooled sandboxes
// and the node's limits beside it.
type nodeJSON struct {
	Version              string          `json:"version"`
	Commit               string          `json:"commit"`
	ID                   string          `json:"id"`
	NodeID               string          `json:"nodeID"` // E2B's older name of id
	ServiceInstanceID    string          `json:"serviceInstanceID"`
	Status               string          `json:"status"`
	SandboxCount         int             `json:"sandboxCount"`
	SandboxStartingCount int             `json:"sandboxStartingCount"`
	PausedSandboxCount   int             `json:"pausedSandboxCount"`
	WarmSandboxCount     int             `json:"warmSandboxCount"`
	Metrics              nodeMetricsJSON `json:"metrics"`
	LimitCPU             int             `json:"limitCPU"`
	LimitMemoryBytes     int64           `json:"limitMemoryBytes"`
	CreateSuccesses      int64           `json:"createSuccesses"`
	CreateFails          int64           `json:"createFails"`
	LastHeartbeat        string          `json:"lastHeartbeat"`
}

// toNodeJSON builds the Node shape of v. sandboxCount counts the sandboxes
// holding the node's CPU and memory (running, pausing, resuming), as E2B
// counts a node's sandboxes; starting and paused ones have their own counts.
func toNodeJSON(v controlplane.NodeView) nodeJSON {
	r := v.Report
	return nodeJSON{
		Version: r.Version, Commit: r.Commit, ID: v.ID, NodeID: v.ID, ServiceInstanceID: v.ID, Status: v.State,
		SandboxCount:         r.Sandboxes["running"] + r.Sandboxes["pausing"] + r.Sandboxes["resuming"],
		SandboxStartingCount: r.Sandboxes["starting"], PausedSandboxCount: r.Sandboxes["paused"], WarmSandboxCount: r.Warm,
		Metrics: nodeMetricsJSON{
			AllocatedCPU: r.CommittedCPUs, AllocatedMemoryBytes: r.CommittedMemoryBytes,
			CPUPercent: int(math.Round(r.CPUPercent)), CPUCount: r.CPUCount,
			MemoryUsedBytes: r.MemoryUsedBytes, MemoryTotalBytes: r.MemoryTotalBytes,
			Disks: []nodeDiskJSON{{MountPoint: r.DiskMountPoint, Device: r.DiskDevice, FilesystemType: r.DiskFilesystemType,
				UsedBytes: r.DiskUsedBytes, TotalBytes: r.DiskTotalBytes}},
		},
		LimitCPU: r.LimitCPUs, LimitMemoryBytes: r.LimitMemoryBytes,
		CreateSuccesses: r.CreateSuccesses, CreateFails: r.CreateFails,
		LastHeartbeat: v.HeartbeatAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
}

// operator answers 403 and false unless the caller's key is of the default
// team: the nodes are the operator's, and their counts take in every team's
// sandboxes.
func operator(w http.ResponseWriter, r *http.Request) bool {
	if teamOf(r) != store.DefaultTeamID {
		writeError(w, http.StatusForbidden, "the nodes are the operator's: use a key of the default team")
		return false
	}
	return true
}

// listNodes answers GET /nodes: every node, for the operator only.
func (h *handler) listNodes(w http.ResponseWriter, r *http.Request) {
	if !operator(w, r) {
		return
	}
	nodes, err := h.svc.Nodes(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]nodeJSON, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, toNodeJSON(n))
	}
	writeJSON(w, http.StatusOK, out)
}

// nodeStatusBody is E2B's NodeStatusChange.
type nodeStatusBody struct {
	Status    *string         `json:"status"`
	ClusterID json.RawMessage `json:"clusterID"`
}

// setNodeStatus answers POST /nodes/{nodeID}: the operator sets a node ready
// or draining (no new sandboxes on it); 204.
func (h *handler) setNodeStatus(w http.ResponseWriter, r *http.Request) {
	if !operator(w, r) {
		return
	}
	var body nodeStatusBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	switch {
	case body.Status == nil:
		writeBad(w, badf("status: required, %q or %q", controlplane.NodeReady, controlplane.NodeDraining))
		return
	case len(body.ClusterID) != 0 && string(body.ClusterID) != "null":
		writeBad(w, badf("clusterID: this server's nodes form one cluster; leave clusterID out"))
		return
	}
	if err := h.svc.SetNodeStatus(r.Context(), chi.URLParam(r, "nodeID"), *body.Status); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}
