package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"lelantos.dev/lelantos/internal/saferoot"
)

// treeLimits bound a fetched tree: the largest template a node takes.
var treeLimits = saferoot.Limits{Bytes: 64 << 30, Entries: 4 << 20}

// Cache keeps the trees a node fetched, by name, under its directory:
// DIR/<hex>/tree, complete once renamed there. It is safe for concurrent use;
// concurrent asks for one tree fetch it once.
type Cache struct {
	dir     string
	baseURL string
	client  *http.Client
	log     *slog.Logger
	fetches singleflight.Group
	mu      sync.Mutex
	local   map[string]string // name: a tree of this node's own (Adopt)
}

// NewCache returns a Cache in dir (created) fetching from baseURL (the
// control plane's cluster endpoint, https://HOST:PORT) with client.
func NewCache(dir, baseURL string, client *http.Client, log *slog.Logger) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("artifact cache: %w", err)
	}
	return &Cache{dir: dir, baseURL: strings.TrimRight(baseURL, "/"), client: client, log: log, local: map[string]string{}}, nil
}

// Adopt names a tree the node already has (its base template), so that asks
// for that name use it as it is, where the node's warm pools expect it.
func (c *Cache) Adopt(ctx context.Context, dir string) (string, error) {
	name, err := Name(ctx, dir)
	if err != nil {
		return "", fmt.Errorf("adopt tree %s: %w", dir, err)
	}
	c.mu.Lock()
	c.local[name] = dir
	c.mu.Unlock()
	return name, nil
}

// Tree returns the path of the tree named name, fetching it first when the
// node does not hold it.
func (c *Cache) Tree(ctx context.Context, name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	c.mu.Lock()
	dir, ok := c.local[name]
	c.mu.Unlock()
	if ok {
		return dir, nil
	}
	final := filepath.Join(c.dir, strings.TrimPrefix(name, "sha256:"), "tree")
	if c.touch(final) {
		return final, nil
	}
	_, err, _ := c.fetches.Do(name, func() (any, error) {
		return nil, c.fetch(context.WithoutCancel(ctx), name, final)
	})
	if err != nil {
		return "", err
	}
	c.touch(final)
	return final, nil
}

// touch marks the tree at final as asked for now, for Prune, and reports
// whether it is there. The mark is the time of the tree's entry (DIR/<hex>),
// which is not part of the tree and so of its name. It holds c.mu, which
// Prune holds from its check of a tree until the tree is out of the way.
func (c *Cache) touch(final string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := os.Lstat(final); err != nil {
		return false
	}
	now := time.Now()
	return os.Chtimes(filepath.Dir(final), now, now) == nil
}

// Image returns the blob name from the control plane, for the caller to
// read and check against its name (agent.Images).
func (c *Cache) Image(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	body, err := c.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("fetch image %s: %w", name, err)
	}
	return body, nil
}

// get asks the control plane for artifact name and returns its stream.
func (c *Cache) get(ctx context.Context, name string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+PathPrefix+name, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return nil, fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(msg)))
	}
	return res.Body, nil
}

// fetch downloads tree name into final, checking its stream against the name.
func (c *Cache) fetch(ctx context.Context, name, final string) error {
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	entry := filepath.Dir(final)
	if err := os.MkdirAll(entry, 0o700); err != nil {
		return fmt.Errorf("fetch tree %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(entry, "partial-")
	if err != nil {
		return fmt.Errorf("fetch tree %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("fetch tree %s: %w", name, err)
	}
	chk, err := NewChecker(name)
	if err != nil {
		return err
	}
	body, err := c.get(ctx, name)
	if err != nil {
		return fmt.Errorf("fetch tree %s: %w", name, err)
	}
	defer body.Close()
	root, err := saferoot.Open(tmp, saferoot.InRoot)
	if err != nil {
		return fmt.Errorf("fetch tree %s: %w", name, err)
	}
	defer root.Close()
	in := chk.Reader(body)
	st, err := root.Extract(ctx, in, ".", saferoot.ExtractOptions{Limits: treeLimits})
	if err != nil {
		return fmt.Errorf("fetch tree %s: unpack: %w", name, err)
	}
	// The tar reader stops at the end marker: hash what follows it too.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return fmt.Errorf("fetch tree %s: %w", name, err)
	}
	if err := chk.Check(); err != nil {
		return fmt.Errorf("fetch tree: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("fetch tree %s: %w", name, err)
	}
	c.log.Info("tree fetched", "name", name, "bytes", st.Bytes, "entries", st.Entries)
	return nil
}

// errMismatch: a fetched stream is not the tree it was asked for.
var errMismatch = errors.New("content does not match its name")
