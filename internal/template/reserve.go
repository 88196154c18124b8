package template

import (
	"fmt"
	"path/filepath"
)

// ReserveRequest is a build to start later with Start: E2B's clients ask for
// a build first, upload its files, then start it.
type ReserveRequest struct {
	// Name is the template's name and BuildID the build's (a UUID).
	Name, BuildID string
	// CPUCount, MemoryMB and DiskSizeMB size the template's sandboxes (0:
	// the defaults); Tags are the tags the build gets (nil: "default").
	CPUCount, MemoryMB, DiskSizeMB int
	Tags                           []string
}

// Reserve records a build as waiting to start; it is failed if not started
// within WaitingTimeout.
func (b *Builder) Reserve(req ReserveRequest) error {
	check := BuildRequest{Name: req.Name, BuildID: req.BuildID, Dockerfile: "FROM scratch", CPUCount: req.CPUCount,
		MemoryMB: req.MemoryMB, DiskSizeMB: req.DiskSizeMB, Tags: req.Tags}
	if req.BuildID == "" {
		return fmt.Errorf("reserve a build of template %s: %w: a build id is required", req.Name, ErrInvalid)
	}
	if err := b.checkRequest(&check); err != nil {
		return err
	}
	rec, err := b.createBuild(req.BuildID, req.Name, BuildWaiting)
	if err != nil {
		return err
	}
	rec.rec.CPUCount, rec.rec.MemoryMB, rec.rec.DiskSizeMB, rec.rec.Tags = req.CPUCount, req.MemoryMB, req.DiskSizeMB, req.Tags
	if err := writeJSON(filepath.Join(rec.dir, buildFile), &rec.rec); err != nil {
		return fmt.Errorf("reserve a build of template %s: %w", req.Name, err)
	}
	return nil
}
