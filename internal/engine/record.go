package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lelantos.dev/lelantos/internal/network"
)

// Spec describes a sandbox to build. The control plane fills it from the template and
// the create request.
type Spec struct {
	// ID is the sandbox id: lower-case letters and digits.
	ID string `json:"id"`
	// TemplateID names the template, for logs and records only.
	TemplateID string `json:"templateID"`
	// RootfsPath is the template's read-only root filesystem on this node.
	RootfsPath string `json:"rootfsPath"`
	// RuntimeClass picks the runtime; empty means the engine's default.
	RuntimeClass string `json:"runtimeClass"`
	CPUCount     int    `json:"cpuCount"`
	MemoryMB     int    `json:"memoryMB"`
	DiskSizeMB   int    `json:"diskSizeMB"`
	// EnvVars are given to every process the daemon starts.
	EnvVars map[string]string `json:"envVars,omitempty"`
	// AccessToken, when set, is required by the daemon on every protected route.
	AccessToken   string `json:"accessToken,omitempty"`
	AllowInternet bool   `json:"allowInternet"`
	// Egress narrows what AllowInternet opens to per-destination rules; nil for none.
	Egress         *network.Egress `json:"egress,omitempty"`
	DefaultUser    string          `json:"defaultUser,omitempty"`
	DefaultWorkdir string          `json:"defaultWorkdir,omitempty"`
	// StartCmd, when set, is started by the engine through the daemon after init.
	StartCmd string `json:"startCmd,omitempty"`
	// SnapshotImage, when set, is a template snapshot made by Engine.Snapshot: the
	// sandbox is restored from it, with whatever it had running, instead of booted.
	SnapshotImage string `json:"snapshotImage,omitempty"`
	// Snapshot, when set, names a snapshot made by Engine.TakeSnapshot: the sandbox
	// starts from it with the memory, processes and files it holds. The template
	// tree, runtime class and sizes are the snapshot's.
	Snapshot string `json:"snapshot,omitempty"`
	// VolumeMounts are volumes mounted read-write, found through Options.Volumes.
	VolumeMounts []VolumeMount `json:"volumeMounts,omitempty"`
}

// State is a sandbox's state on this node.
type State string

// The states of a sandbox on a node. Starting, Pausing and Resuming are only seen
// while an operation runs, or after a crash during one.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StatePausing  State = "pausing"
	StatePaused   State = "paused"
	StateResuming State = "resuming"
	StateDead     State = "dead"
)

// record is what the engine keeps of a sandbox on disk, in its directory, so that a
// restarted node can re-adopt it. It is rewritten atomically on every change.
type record struct {
	Spec  Spec  `json:"spec"`
	State State `json:"state"`
	// Address is where the sandbox's ports are reached from this node.
	Address string `json:"address"`
	// NetNSPath is the sandbox's network namespace.
	NetNSPath string `json:"netnsPath"`
	// EnvdDir is the host directory holding the daemon binary the sandbox runs; it
	// stays the same across pause and resume so a checkpoint finds its files.
	EnvdDir string `json:"envdDir"`
	// Image is the checkpoint directory of a paused sandbox; empty otherwise.
	Image string `json:"image,omitempty"`
	// Files is the directory of the files of a sandbox paused without its memory (a
	// filesystem checkpoint): resuming boots the sandbox fresh with them. It stays
	// until the next pause replaces it.
	Files string `json:"files,omitempty"`
	// Frozen is true when a paused sandbox is frozen in memory, not checkpointed.
	Frozen bool `json:"frozen,omitempty"`
	// Restored is true when the sandbox was booted from its template's snapshot, so
	// the template's start command already runs in it.
	Restored bool `json:"restored,omitempty"`
	// Pauses counts checkpoints, naming each image directory uniquely.
	Pauses int `json:"pauses"`
	// RuntimeID names the sandbox to its runtime and network and names its directory.
	// It is the sandbox's ID, except for one taken from the warm pool, which keeps the
	// name it was started under. Read it with rid.
	RuntimeID string `json:"runtimeID,omitempty"`
	// Reason says why a dead sandbox ended.
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// rid is the name the sandbox has in its runtime and network.
func (r *record) rid() string {
	if r.RuntimeID != "" {
		return r.RuntimeID
	}
	return r.Spec.ID
}

const recordFile = "record.json"

func writeRecord(dir string, r *record) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("write record of %s: %w", r.Spec.ID, err)
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write record of %s: %w", r.Spec.ID, err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write record of %s: %w", r.Spec.ID, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, recordFile)); err != nil {
		return fmt.Errorf("write record of %s: %w", r.Spec.ID, err)
	}
	return nil
}

func readRecord(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, fmt.Errorf("read record in %s: %w", dir, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read record in %s: %w", dir, err)
	}
	return &r, nil
}
