package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// NodeDisk is the file system of a node's data directory.
type NodeDisk struct {
	MountPoint     string `json:"mountPoint"`
	Device         string `json:"device"`
	FilesystemType string `json:"filesystemType"`
	UsedBytes      int64  `json:"usedBytes"`
	TotalBytes     int64  `json:"totalBytes"`
}

// NodeMetrics is a node's machine and what its sandboxes commit of it.
type NodeMetrics struct {
	AllocatedCPU         int        `json:"allocatedCPU"`
	AllocatedMemoryBytes int64      `json:"allocatedMemoryBytes"`
	CPUPercent           int        `json:"cpuPercent"`
	CPUCount             int        `json:"cpuCount"`
	MemoryUsedBytes      int64      `json:"memoryUsedBytes"`
	MemoryTotalBytes     int64      `json:"memoryTotalBytes"`
	Disks                []NodeDisk `json:"disks"`
}

// Node is an entry of GET /nodes.
type Node struct {
	ID                   string      `json:"id"`
	Version              string      `json:"version"`
	Commit               string      `json:"commit"`
	Status               string      `json:"status"`
	SandboxCount         int         `json:"sandboxCount"`
	SandboxStartingCount int         `json:"sandboxStartingCount"`
	PausedSandboxCount   int         `json:"pausedSandboxCount"`
	WarmSandboxCount     int         `json:"warmSandboxCount"`
	Metrics              NodeMetrics `json:"metrics"`
	LimitCPU             int         `json:"limitCPU"`
	LimitMemoryBytes     int64       `json:"limitMemoryBytes"`
	CreateSuccesses      int64       `json:"createSuccesses"`
	CreateFails          int64       `json:"createFails"`
	LastHeartbeat        time.Time   `json:"lastHeartbeat"`
}

// Nodes lists the nodes (GET /nodes; a key of the default team).
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	if err := c.Do(ctx, http.MethodGet, "/nodes", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// SetNodeStatus sets node id "ready" or "draining" (POST /nodes/{nodeID}).
func (c *Client) SetNodeStatus(ctx context.Context, id, status string) error {
	b, err := json.Marshal(map[string]string{"status": status})
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, "/nodes/"+url.PathEscape(id), bytes.NewReader(b), nil)
}
