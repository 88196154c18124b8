package template_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/saferoot"
	"lelantos.dev/lelantos/internal/template"
)

// diskUse is the space the files below dir take on dir's file system (mounts
// below it are not counted: they are the step disk's inside).
func diskUse(dir string) int64 {
	var top syscall.Stat_t
	if syscall.Stat(dir, &top) != nil {
		return 0
	}
	var n int64
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Dev != top.Dev {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		n += st.Blocks * 512
		return nil
	})
	return n
}

// checkNoLeftovers fails t when the builder left mounts, work directories or loop
// devices behind.
func checkNoLeftovers(t *testing.T, dataDir string) {
	t.Helper()
	templates := filepath.Join(dataDir, "templates")
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), templates) {
		t.Errorf("mounts left under %s", templates)
	}
	if n := countDir(t, filepath.Join(templates, "tmp")); n != 0 {
		t.Errorf("%d work directories left", n)
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.HasPrefix(string(b), templates) {
			t.Errorf("loop device %s still holds %s", f, strings.TrimSpace(string(b)))
		}
	}
}

// TestRunDiskCap: a RUN step writes into a file system of RunDiskMB; writing past
// it fails the step with a clear error while the host directory stays bounded, and
// the mounts go on failure and on cancel.
func TestRunDiskCap(t *testing.T) {
	const capMB = 128
	h := newHarnessWith(t, func(o *template.BuilderOptions) { o.RunDiskMB = capMB })
	ctx := context.Background()
	tmp := filepath.Join(h.dir, "templates", "tmp")

	t.Run("under the cap", func(t *testing.T) {
		var log syncBuffer
		res, err := h.builder.Build(ctx, template.BuildRequest{Name: "diskok", Dockerfile: "FROM base\nRUN head -c 20000000 /dev/zero > /mid && ln /mid /mid2\n"}, &log)
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log.String())
		}
		a, _ := os.Stat(filepath.Join(res.Metadata.Rootfs, "mid"))
		b, _ := os.Stat(filepath.Join(res.Metadata.Rootfs, "mid2"))
		if a == nil || a.Size() != 20000000 || !os.SameFile(a, b) {
			t.Errorf("the step's files: %v %v", a, b)
		}
		checkNoLeftovers(t, h.dir)
	})

	t.Run("past the cap", func(t *testing.T) {
		var peak atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if n := diskUse(tmp); n > peak.Load() {
					peak.Store(n)
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		var log syncBuffer
		_, err := h.builder.Build(ctx, template.BuildRequest{Name: "diskfull", Dockerfile: "FROM base\nRUN dd if=/dev/zero of=/big bs=1M count=400\n"}, &log)
		close(stop)
		<-done
		if !errors.Is(err, template.ErrStepFailed) || !strings.Contains(err.Error(), "ran out of disk space") || !strings.Contains(err.Error(), "128 MB") {
			t.Fatalf("error %v\n%s", err, log.String())
		}
		if !strings.Contains(log.String(), "No space left on device") {
			t.Errorf("the command's own error is not in the log:\n%s", log.String())
		}
		t.Logf("peak use of the work directory: %d MB", peak.Load()>>20)
		if peak.Load() > (capMB+8)<<20 {
			t.Errorf("the work directory grew to %d MB, past the %d MB cap", peak.Load()>>20, capMB)
		}
		checkNoLeftovers(t, h.dir)
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		var log syncBuffer
		go func() {
			for !strings.Contains(log.String(), "Step 2/2") {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			cancel()
		}()
		_, err := h.builder.Build(cctx, template.BuildRequest{Name: "diskcancel", Dockerfile: "FROM base\nRUN sleep 60\n"}, &log)
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled build: %v\n%s", err, log.String())
		}
		checkNoLeftovers(t, h.dir)
	})
}

// gzipBomb is a small gzip-compressed tar archive of files of 1 MiB of zeros each,
// size bytes in all: no entry is large by itself.
func gzipBomb(t *testing.T, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for i := int64(0); i < size>>20; i++ {
		if err := tw.WriteHeader(&tar.Header{Name: "zeros" + strconv.FormatInt(i, 10), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(tw, zeros{}, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAddLimits: ADD refuses an archive that expands far past its size (a gzip
// bomb) or past the builder's limits, naming the instruction and the file, and
// leaves nothing of it behind.
func TestAddLimits(t *testing.T) {
	b, dir := newStoreBuilderWith(t, func(o *template.BuilderOptions) {
		o.ExtractLimits = saferoot.Limits{Bytes: 64 << 20, Entries: 1000}
	})
	bomb := gzipBomb(t, 512<<20)
	t.Logf("bomb: %d bytes compressed, 512 MiB expanded", len(bomb))
	var many []tarEntry
	for i := range 1001 {
		many = append(many, tarEntry{name: "f" + strconv.Itoa(i)})
	}
	bctx := writeContext(t, map[string]string{
		"bomb.tar.gz": string(bomb),
		"big.tar":     string(makeTar(t, false, tarEntry{name: "big", body: strings.Repeat("b", 65<<20)})),
		"many.tar":    string(makeTar(t, false, many...)),
	})
	tests := []struct{ file, want string }{
		{"bomb.tar.gz", "decompresses to more than 100 times its size"},
		{"big.tar", "archive content larger than 67108864 bytes"},
		{"many.tar", "more than 1000 entries"},
	}
	layers := filepath.Join(dir, "templates", "layers")
	for i, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			before := countDir(t, layers)
			start := time.Now()
			_, err := b.Build(context.Background(), template.BuildRequest{
				Name: "add" + string(rune('a'+i)), Dockerfile: "FROM scratch\nADD " + tc.file + " /opt/\n", ContextDir: bctx}, nil)
			if !errors.Is(err, template.ErrInvalid) || !errors.Is(err, saferoot.ErrTooLarge) ||
				!strings.Contains(err.Error(), "ADD "+tc.file) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v", err)
			}
			t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), err)
			if n := countDir(t, layers) - before; n > 1 { // FROM scratch's, the first time
				t.Errorf("the build left %d layers", n)
			}
			if m, _ := filepath.Glob(filepath.Join(layers, "*", "rootfs", "opt")); len(m) > 0 {
				t.Errorf("a layer of the refused ADD is cached: %v", m)
			}
			if use := diskUse(filepath.Join(dir, "templates")); use > 80<<20 {
				t.Errorf("the builder's directory holds %d MB after the refusal", use>>20)
			}
			checkNoLeftovers(t, dir)
		})
	}
}

// TestBuildQueue: with MaxBuilds 1 and MaxQueuedBuilds 1, a second build waits for
// the first and a third is refused with ErrBusy until a place is free.
func TestBuildQueue(t *testing.T) {
	h := newHarnessWith(t, func(o *template.BuilderOptions) { o.MaxBuilds, o.MaxQueuedBuilds = 1, 1 })
	ctx := context.Background()
	a, err := h.builder.Start(template.BuildRequest{Name: "qa", Dockerfile: "FROM base\nRUN sleep 3\n"})
	if err != nil {
		t.Fatal(err)
	}
	bID, err := h.builder.Start(template.BuildRequest{Name: "qb", Dockerfile: "FROM base\nRUN echo second\n"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.builder.Start(template.BuildRequest{Name: "qc", Dockerfile: "FROM base\n"}); !errors.Is(err, template.ErrBusy) {
		t.Fatalf("a third build: %v, want ErrBusy", err)
	}
	if _, err := h.builder.Build(ctx, template.BuildRequest{Name: "qd", Dockerfile: "FROM base\n"}, nil); !errors.Is(err, template.ErrBusy) {
		t.Fatalf("a fourth build: %v, want ErrBusy", err)
	}
	wait := func(id string) *template.BuildRecord {
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			rec, err := h.builder.BuildStatus(id)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != template.BuildBuilding {
				return rec
			}
		}
		t.Fatalf("build %s did not end", id)
		return nil
	}
	ra, rb := wait(a), wait(bID)
	if ra.Status != template.BuildReady || rb.Status != template.BuildReady {
		t.Fatalf("builds %+v %+v", ra, rb)
	}
	logs, _ := h.builder.BuildLogs(bID, 0, 0)
	var waited bool
	for _, e := range logs {
		if strings.Contains(e.Message, "waiting for a turn") {
			waited = true
		}
		if strings.HasPrefix(e.Message, "Step 1/2") && e.Time.Before(*ra.FinishedAt) {
			t.Errorf("the second build started at %s, before the first ended at %s", e.Time, ra.FinishedAt)
		}
	}
	if !waited {
		t.Errorf("the second build's log does not say it waited: %+v", logs)
	}
	if _, err := h.builder.Build(ctx, template.BuildRequest{Name: "qc", Dockerfile: "FROM base\n"}, nil); err != nil {
		t.Errorf("a build once the node is free: %v", err)
	}
}
