package artifact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// PathPrefix is where Index.Handler serves trees: PathPrefix + name.
const PathPrefix = "/artifacts/v1/"

// Index names the control plane's trees and serves them by name. A tree is
// named on first use and the name kept for the Index's life: the trees it
// names never change (template versions are immutable). It is safe for
// concurrent use.
type Index struct {
	// blobs, when set, are served too.
	blobs    *Blobs
	mu       sync.Mutex
	byPath   map[string]string // tree: name
	byName   map[string]string // name: tree
	computes singleflight.Group
	log      *slog.Logger
}

// NewIndex returns an empty Index that also serves blobs (nil: none).
func NewIndex(log *slog.Logger, blobs *Blobs) *Index {
	return &Index{byPath: map[string]string{}, byName: map[string]string{}, log: log, blobs: blobs}
}

// Name returns the name of the tree at dir, reading the whole tree the
// first time (a few seconds for a large one).
func (x *Index) Name(ctx context.Context, dir string) (string, error) {
	x.mu.Lock()
	name, ok := x.byPath[dir]
	x.mu.Unlock()
	if ok {
		return name, nil
	}
	v, err, _ := x.computes.Do(dir, func() (any, error) {
		name, err := Name(context.WithoutCancel(ctx), dir)
		if err != nil {
			return "", err
		}
		x.mu.Lock()
		x.byPath[dir], x.byName[name] = name, dir
		x.mu.Unlock()
		x.log.Info("tree named for other nodes", "tree", dir, "name", name)
		return name, nil
	})
	if err != nil {
		return "", fmt.Errorf("name tree %s: %w", dir, err)
	}
	return v.(string), nil
}

// tree returns the tree named name.
func (x *Index) tree(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	dir, ok := x.byName[name]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return dir, nil
}

// Handler serves GET PathPrefix+NAME: the canonical tar stream of the tree
// of that name, or the blob of that name, which the reader checks against
// the name. Serve it only to
// nodes of the cluster (behind its mutual TLS).
func (x *Index) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "artifacts: GET only", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, PathPrefix)
		dir, err := x.tree(name)
		switch {
		case errors.Is(err, ErrInvalid):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case err != nil && x.blobs != nil:
			f, berr := x.blobs.Open(name)
			if berr != nil {
				http.Error(w, berr.Error(), http.StatusNotFound)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "", time.Time{}, f)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		if err := WriteTree(r.Context(), w, dir); err != nil && r.Context().Err() == nil {
			// The status is sent: the reader sees a stream that does not
			// match its name.
			x.log.Error("serve a tree", "name", name, "err", err)
		}
	})
}
