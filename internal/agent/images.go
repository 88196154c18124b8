package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"lelantos.dev/lelantos/internal/artifact"
	"lelantos.dev/lelantos/internal/engine"
)

// ImagesPath is where Images serves paused sandboxes' images (ImagesPath+ID),
// SnapshotsPath snapshots' (SnapshotsPath+SNAPSHOT_ID).
const (
	ImagesPath    = "/images/v1/"
	SnapshotsPath = "/snapshots/v1/"
)

// migratedPrefix starts the IDs of the snapshots a node imports to start a
// sandbox from an image another node saved; the rest is the image's hash.
const migratedPrefix = "mig"

// Images returns the handler of GET ImagesPath+SANDBOX_ID, the image of a
// sandbox paused with its memory (engine.ExportPaused), and of GET
// SnapshotsPath+SNAPSHOT_ID, a snapshot (engine.ExportSnapshot), so that the
// control plane keeps them and other nodes start sandboxes from them; every
// other request goes to next. Serve it only behind the agent's mutual TLS.
func (s *Server) Images(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if snap, ok := strings.CutPrefix(r.URL.Path, SnapshotsPath); ok && r.Method == http.MethodGet {
			s.exportSnapshot(w, r, snap)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, ImagesPath)
		if !ok || r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		if _, err := s.engine.Get(id); err != nil {
			http.Error(w, fmt.Sprintf("images: no sandbox %s on this node", id), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		if err := s.engine.ExportPaused(r.Context(), id, w); err != nil {
			if errors.Is(err, engine.ErrState) {
				http.Error(w, err.Error(), http.StatusConflict)
			}
			// Otherwise the status is sent: the reader's hash tells.
		}
	})
}

// exportSnapshot streams snapshot id. ExportSnapshot writes nothing before
// it knows the snapshot, so an unknown one can still be a 404.
func (s *Server) exportSnapshot(w http.ResponseWriter, r *http.Request, id string) {
	w.Header().Set("Content-Type", "application/x-tar")
	if err := s.engine.ExportSnapshot(r.Context(), id, w); errors.Is(err, engine.ErrNotFound) {
		http.Error(w, fmt.Sprintf("snapshots: no snapshot %s on this node", id), http.StatusNotFound)
	}
	// Any other failure comes after the status: the reader's hash tells.
}

// Images finds the images of paused sandboxes the control plane kept, by
// name; the control plane's index and a node's artifact cache implement it.
type Images interface {
	Image(ctx context.Context, name string) (io.ReadCloser, error)
}

// WithImages makes the server take specs that start a sandbox from a kept
// image (snapshot_artifact), fetched from im.
func (s *Server) WithImages(im Images) *Server {
	s.images = im
	return s
}

// importImage fetches image name and imports it as a snapshot whose template
// is rootfs, returning the snapshot's ID; an image imported before is used
// again.
func (s *Server) importImage(ctx context.Context, name, rootfs string) (string, error) {
	chk, err := artifact.NewChecker(name)
	if err != nil {
		return "", fmt.Errorf("%w: snapshot_artifact: %v", engine.ErrInvalid, err)
	}
	id := migratedPrefix + strings.TrimPrefix(name, "sha256:")[:40]
	if s.images == nil {
		return "", fmt.Errorf("%w: this node takes no kept images", engine.ErrInvalid)
	}
	rc, err := s.images.Image(ctx, name)
	if err != nil {
		return "", fmt.Errorf("fetch image %s: %w", name, err)
	}
	defer rc.Close()
	err = s.engine.ImportSnapshot(ctx, id, chk.Reader(rc), rootfs, chk.Check)
	if errors.Is(err, engine.ErrExists) {
		return id, nil
	}
	return id, err
}

// dropImported removes the snapshot a killed sandbox was started from, when
// the node imported it for that sandbox.
func (s *Server) dropImported(snapshotID string) {
	if strings.HasPrefix(snapshotID, migratedPrefix) {
		_ = s.engine.DeleteSnapshot(context.Background(), snapshotID)
	}
}
