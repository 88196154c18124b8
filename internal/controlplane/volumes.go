package controlplane

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/volume"
)

// VolumeBackend keeps volumes' content, addressed by volume ID: internal/volume's
// Local on a single node, Dirs on a file system every node shares. The store says
// which volumes exist and whose they are; the backend only holds their files.
type VolumeBackend interface {
	// Create makes the empty volume id of sizeMB MiB.
	Create(ctx context.Context, id string, sizeMB int) error
	// Delete removes volume id and its content; a missing one is volume.ErrNotFound.
	Delete(ctx context.Context, id string) error
	// Open opens volume id's content, host-side, for the content API.
	Open(ctx context.Context, id string) (*volume.Tree, error)
	// List returns the IDs of the volumes it keeps.
	List(ctx context.Context) ([]string, error)
}

// VolumeStore is the part of the store volumes need; *store.DB implements it.
type VolumeStore interface {
	InsertVolume(ctx context.Context, v *store.Volume) error
	GetVolume(ctx context.Context, id string) (*store.Volume, error)
	ListVolumes(ctx context.Context, teamID string) ([]*store.Volume, error)
	DeleteVolume(ctx context.Context, id string) error
}

// VolumeInfo is a volume as its team sees it: Token opens its content API until it
// expires (a fresh one comes with every Create and GetVolume).
type VolumeInfo struct {
	ID, Name string
	SizeMB   int
	Token    string
}

// uuidRE is the form of a volume ID (lower-case, as the control plane issues them).
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// validVolumeID reports whether id could be a volume ID.
func validVolumeID(id string) bool { return uuidRE.MatchString(id) }

// needVolumes refuses volume calls when volumes are off.
func (s *Service) needVolumes() error {
	if s.cfg.Volumes == nil {
		return newError(ErrUnavailable, "volumes are not enabled on this server")
	}
	return nil
}

// volumeNotFound is the ErrNotFound error of a volume ID.
func volumeNotFound(id string) error { return newError(ErrNotFound, "volume %q not found", id) }

// CreateVolume makes volume name of team teamID, of sizeMB MiB (0: the configured
// default), and returns it with a content token. A name the team has already is
// ErrInvalidArgument, as at E2B.
func (s *Service) CreateVolume(ctx context.Context, teamID, name string, sizeMB int) (*VolumeInfo, error) {
	if err := needTeam(teamID); err != nil {
		return nil, err
	}
	if err := s.needVolumes(); err != nil {
		return nil, err
	}
	if !store.ValidVolumeName(name) {
		return nil, invalidf("name: invalid volume name %q (1-%d of a-z, A-Z, 0-9, '_' and '-')", name, store.MaxVolumeNameLen)
	}
	if sizeMB == 0 {
		sizeMB = s.cfg.VolumeSizeMB
	}
	if sizeMB < volume.MinSizeMB || sizeMB > s.cfg.MaxVolumeSizeMB {
		return nil, invalidf("sizeMB: must be between %d and %d, got %d", volume.MinSizeMB, s.cfg.MaxVolumeSizeMB, sizeMB)
	}
	v := &store.Volume{ID: uuid.NewString(), TeamID: teamID, Name: name, SizeMB: sizeMB, TokenKey: randomHex(32)}
	// The record first: a duplicate name costs nothing, and a crash before the
	// content exists is repaired by ReconcileVolumes.
	if err := s.store.InsertVolume(ctx, v); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, invalidf("Volume with name '%s' already exists", name)
		}
		return nil, internal("create volume: store", err)
	}
	bctx := context.WithoutCancel(ctx)
	if err := s.cfg.Volumes.Create(bctx, v.ID, sizeMB); err != nil {
		if derr := s.store.DeleteVolume(bctx, v.ID); derr != nil {
			s.log.Error("remove the record of a volume that could not be made", "volume", v.ID, "err", derr)
		}
		return nil, internal("create volume "+name, err)
	}
	return s.volumeInfo(v)
}

// volumeInfo is v with a fresh token.
func (s *Service) volumeInfo(v *store.Volume) (*VolumeInfo, error) {
	tok, err := s.volumeToken(v)
	if err != nil {
		return nil, err
	}
	return &VolumeInfo{ID: v.ID, Name: v.Name, SizeMB: v.SizeMB, Token: tok}, nil
}

// ownedVolume reads volume id of team teamID; another team's is not found.
func (s *Service) ownedVolume(ctx context.Context, teamID, id string) (*store.Volume, error) {
	if err := needTeam(teamID); err != nil {
		return nil, err
	}
	if !validVolumeID(id) {
		return nil, invalidf("volumeID: invalid volume ID %q", id)
	}
	v, err := s.store.GetVolume(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.TeamID != teamID) {
		return nil, volumeNotFound(id)
	}
	if err != nil {
		return nil, internal("read volume", err)
	}
	return v, nil
}

// GetVolume returns volume id of team teamID with a fresh content token. A
// malformed ID is ErrInvalidArgument; an unknown one, or another team's,
// ErrNotFound.
func (s *Service) GetVolume(ctx context.Context, teamID, id string) (*VolumeInfo, error) {
	if err := s.needVolumes(); err != nil {
		return nil, err
	}
	v, err := s.ownedVolume(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	return s.volumeInfo(v)
}

// ListVolumes returns team teamID's volumes by name, without tokens.
func (s *Service) ListVolumes(ctx context.Context, teamID string) ([]VolumeInfo, error) {
	if err := needTeam(teamID); err != nil {
		return nil, err
	}
	if err := s.needVolumes(); err != nil {
		return nil, err
	}
	vs, err := s.store.ListVolumes(ctx, teamID)
	if err != nil {
		return nil, internal("list volumes", err)
	}
	out := make([]VolumeInfo, 0, len(vs))
	for _, v := range vs {
		out = append(out, VolumeInfo{ID: v.ID, Name: v.Name, SizeMB: v.SizeMB})
	}
	return out, nil
}

// DeleteVolume removes volume id of team teamID and its content. While a sandbox
// that has not ended (running or paused) mounts it, it is ErrConflict and nothing
// changes.
func (s *Service) DeleteVolume(ctx context.Context, teamID, id string) error {
	if err := s.needVolumes(); err != nil {
		return err
	}
	if _, err := s.ownedVolume(ctx, teamID, id); err != nil {
		return err
	}
	err := s.store.DeleteVolume(ctx, id)
	var inUse *store.VolumeInUseError
	switch {
	case errors.As(err, &inUse):
		return newError(ErrConflict, "volume %s is mounted by sandboxes that have not ended (%s): kill them first",
			id, strings.Join(inUse.Sandboxes, ", "))
	case errors.Is(err, store.ErrNotFound):
		return volumeNotFound(id)
	case err != nil:
		return internal("delete volume", err)
	}
	// The record is gone, so nothing can mount the volume any more. Content left
	// by a failure here goes at the next ReconcileVolumes.
	if err := s.cfg.Volumes.Delete(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, volume.ErrNotFound) {
		s.log.Error("remove a deleted volume's content", "volume", id, "err", err)
	}
	return nil
}

// OpenVolume opens volume id's content for the holder of a content token of it. A
// missing, forged, expired or foreign token is ErrUnauthenticated. Close the tree
// when done.
func (s *Service) OpenVolume(ctx context.Context, id, token string) (*volume.Tree, error) {
	if err := s.needVolumes(); err != nil {
		return nil, err
	}
	v, err := s.checkVolumeToken(ctx, id, token)
	if err != nil {
		return nil, err
	}
	t, err := s.cfg.Volumes.Open(ctx, v.ID)
	if errors.Is(err, volume.ErrNotFound) {
		return nil, volumeNotFound(id)
	}
	if err != nil {
		return nil, internal("open volume", err)
	}
	return t, nil
}

// ReconcileVolumes brings the backend in line with the store, once at start: the
// content of volumes the store no longer knows (a deletion cut short) is removed,
// and a volume the store knows but the backend lacks (a crash right after its
// record was made) is made again, empty.
func (s *Service) ReconcileVolumes(ctx context.Context) error {
	if s.cfg.Volumes == nil {
		return nil
	}
	known, err := s.store.ListVolumes(ctx, "")
	if err != nil {
		return fmt.Errorf("reconcile volumes: %w", err)
	}
	held, err := s.cfg.Volumes.List(ctx)
	if err != nil {
		return fmt.Errorf("reconcile volumes: %w", err)
	}
	have := make(map[string]bool, len(held))
	for _, id := range held {
		have[id] = true
	}
	var errs []error
	for _, v := range known {
		if have[v.ID] {
			delete(have, v.ID)
			continue
		}
		s.log.Warn("volume had no content: made it again, empty", "volume", v.ID, "name", v.Name)
		if err := s.cfg.Volumes.Create(ctx, v.ID, v.SizeMB); err != nil {
			errs = append(errs, err)
		}
	}
	for id := range have {
		s.log.Info("removing the content of a deleted volume", "volume", id)
		if err := s.cfg.Volumes.Delete(ctx, id); err != nil && !errors.Is(err, volume.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconcile volumes: %w", err)
	}
	return nil
}
