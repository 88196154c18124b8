package main

import (
	"log/slog"
	"path/filepath"

	"lelantos.dev/lelantos/internal/api"
	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/volume"
)

// serverVolumes are the node's volumes, kept under <data>/volumes, each a sparse
// ext4 image loop-mounted there while in use; nil when the host cannot (no loop
// devices or no mkfs.ext4): the volume routes then answer 403.
type serverVolumes struct {
	local *volume.Local
}

// openVolumes opens the server's volumes, or logs why it keeps none.
func openVolumes(dataDir string, log *slog.Logger) *serverVolumes {
	l, err := volume.NewLocal(filepath.Join(dataDir, "volumes"))
	if err != nil {
		log.Warn("volumes are off", "err", err)
		return nil
	}
	return &serverVolumes{local: l}
}

// engine is what the node mounts volumes from (nil when off).
func (v *serverVolumes) engine() engine.Volumes {
	if v == nil {
		return nil
	}
	return v.local
}

// backend is what the control plane keeps volumes in (nil when off).
func (v *serverVolumes) backend() controlplane.VolumeBackend {
	if v == nil {
		return nil
	}
	return v.local
}

// routes is what serves the volume routes (nil when off: they answer 403).
func (v *serverVolumes) routes(svc *controlplane.Service) api.Volumes {
	if v == nil {
		return nil
	}
	return svc
}

// close unmounts the volumes from the host at server stop; sandboxes that still run
// keep theirs, and the next start mounts each again on first use.
func (v *serverVolumes) close(log *slog.Logger) {
	if v == nil {
		return
	}
	if err := v.local.Close(); err != nil {
		log.Warn("unmount volumes", "err", err)
	}
}
