package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/api"
	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/controlplane/controlplanetest"
	"lelantos.dev/lelantos/internal/store"
)

// unpackingBuilder is the node's template builder up to the build itself:
// it unpacks each context with extractContext, as the server does, into a
// directory of its own, and reports the build ready at once. The step
// form's methods (uploads, tags) are not used here.
type unpackingBuilder struct {
	controlplane.TemplateBuilder
	dir    string
	mu     sync.Mutex
	builds map[string]*controlplane.TemplateBuild
	dirs   map[string]string
}

func (b *unpackingBuilder) StartBuild(_ context.Context, req controlplane.TemplateBuildRequest) (string, error) {
	dir, err := os.MkdirTemp(b.dir, "ctx-")
	if err != nil {
		return "", err
	}
	if req.Context != nil {
		if err := extractContext(req.Context, dir); err != nil {
			return "", &controlplane.Error{Kind: controlplane.ErrInvalidArgument, Message: "context: " + err.Error()}
		}
	}
	now := time.Now().UTC()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.builds[req.BuildID] = &controlplane.TemplateBuild{BuildID: req.BuildID, TemplateID: req.Name,
		Status: controlplane.BuildReady, StartedAt: now, FinishedAt: &now}
	b.dirs[req.BuildID] = dir
	return req.BuildID, nil
}

func (b *unpackingBuilder) Build(_ context.Context, id string) (*controlplane.TemplateBuild, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bd, ok := b.builds[id]; ok {
		c := *bd
		return &c, nil
	}
	return nil, &controlplane.Error{Kind: controlplane.ErrNotFound, Message: "no build " + id}
}

func (b *unpackingBuilder) BuildLogs(context.Context, string, int, int) ([]controlplane.TemplateLogEntry, error) {
	return nil, nil
}

func (b *unpackingBuilder) Builds(context.Context, string) ([]*controlplane.TemplateBuild, error) {
	return nil, nil
}

func (b *unpackingBuilder) Delete(context.Context, string, func(string) (bool, error)) error {
	return nil
}

// serveBuilds starts the API on a real store, with an unpackingBuilder and
// POST /templates bounded by maxBuildBody (0: the default), and points the
// CLI at it.
func serveBuilds(t *testing.T, maxBuildBody int64) *unpackingBuilder {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	builder := &unpackingBuilder{dir: t.TempDir(), builds: map[string]*controlplane.TemplateBuild{}, dirs: map[string]string{}}
	svc, err := controlplane.New(controlplane.Config{Logger: quietLog(), Builder: builder}, db, controlplanetest.NewNode())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := controlplane.CreateAPIKey(ctx, db, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(svc, controlplane.NewAuthenticator(db, nil),
		api.Options{Logger: quietLog(), Templates: svc, MaxBuildBodyBytes: maxBuildBody}))
	t.Cleanup(srv.Close)
	t.Setenv("E2B_API_URL", srv.URL)
	t.Setenv("E2B_API_KEY", key)
	return builder
}

// writeRandom writes size bytes that do not compress to path and returns
// their SHA-256.
func writeRandom(t *testing.T, path string, size int64) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{7})
	if _, err := io.CopyN(io.MultiWriter(f, h), rng, size); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// TestTemplateBuildStreamsContext sends a 300 MiB build context with
// `lelantos template build` to a real API server, which unpacks it on disk:
// neither side holds it in memory (the heap grows by far less than its
// size), and it arrives whole.
func TestTemplateBuildStreamsContext(t *testing.T) {
	const size = 300 << 20
	ctx := context.Background()
	builder := serveBuilds(t, 0)

	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM base\nCOPY blob /\n"})
	sum := writeRandom(t, filepath.Join(dir, "blob"), size)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var out bytes.Buffer
	err := templateBuild(ctx, []string{"-n", "big", dir}, &out)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatalf("template build: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Template big is ready") {
		t.Errorf("output: %s", out.String())
	}
	grew := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("heap in use: %d MiB before, %d MiB at most while sending %d MiB", before.HeapInuse>>20, peak.Load()>>20, size>>20)
	if grew > 48<<20 {
		t.Errorf("the heap grew by %d MiB while a %d MiB context was sent: it is held in memory", grew>>20, size>>20)
	}

	if len(builder.dirs) != 1 {
		t.Fatalf("%d builds, want 1", len(builder.dirs))
	}
	for _, d := range builder.dirs {
		f, err := os.Open(filepath.Join(d, "blob"))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), sum) {
			t.Errorf("unpacked blob: %d bytes (%v), want the %d sent, same digest", n, err, size)
		}
	}
}

// quietLog is a logger that drops everything.
func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestTemplateBuildContextTooLarge: a context over the server's limit is
// refused while it streams, and the CLI shows the server's 413 naming it.
func TestTemplateBuildContextTooLarge(t *testing.T) {
	ctx := context.Background()
	builder := serveBuilds(t, 1<<20)
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM base\n"})
	writeRandom(t, filepath.Join(dir, "blob"), 8<<20)
	var out bytes.Buffer
	err := templateBuild(ctx, []string{"-n", "big", dir}, &out)
	if err == nil || !strings.Contains(err.Error(), "1048576 bytes, the server's limit") {
		t.Fatalf("template build of an 8 MiB context against a 1 MiB limit: %v", err)
	}
	if len(builder.builds) != 0 {
		t.Errorf("a build started")
	}
}
