package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"

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

// exportSnapshot streams snapshot id.
func (s *Server) exportSnapshot(w http.ResponseWriter, r *http.Request, id string) {
	// The first write commits the status: read the stream's start before it,
	// so that an unknown snapshot is a 404.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.engine.ExportSnapshot(r.Context(), id, pw)) }()
	buf := make([]byte, 32<<10)
	n, err := io.ReadFull(pr, buf)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		http.Error(w, fmt.Sprintf("snapshots: no snapshot %s on this node", id), http.StatusNotFound)
		return
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	if _, err := w.Write(buf[:n]); err != nil {
		pr.CloseWithError(err)
		return
	}
	_, _ = io.Copy(w, pr) // a failure midway shows in the reader's hash
	pr.Close()
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
	hexDigest, ok := strings.CutPrefix(name, "sha256:")
	if !ok || len(hexDigest) != 64 || strings.Trim(hexDigest, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: snapshot_artifact %q is not sha256:<64 hex digits>", engine.ErrInvalid, name)
	}
	id := migratedPrefix + hexDigest[:40]
	if s.images == nil {
		return "", fmt.Errorf("%w: this node takes no kept images", engine.ErrInvalid)
	}
	rc, err := s.images.Image(ctx, name)
	if err != nil {
		return "", fmt.Errorf("fetch image %s: %w", name, err)
	}
	defer rc.Close()
	h := sha256.New()
	err = s.engine.ImportSnapshot(ctx, id, io.TeeReader(rc, h), rootfs, func() error { return sameHash(h, hexDigest) })
	if errors.Is(err, engine.ErrExists) {
		return id, nil
	}
	return id, err
}

// sameHash checks that h summed to hexDigest.
func sameHash(h hash.Hash, hexDigest string) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
		return fmt.Errorf("the image is sha256:%s, not the one asked for", got)
	}
	return nil
}

// dropImported removes the snapshot a killed sandbox was started from, when
// the node imported it for that sandbox.
func (s *Server) dropImported(snapshotID string) {
	if strings.HasPrefix(snapshotID, migratedPrefix) {
		_ = s.engine.DeleteSnapshot(context.Background(), snapshotID)
	}
}
