package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/gen/envd/process"
)

// BenchmarkEngineCreateFirstCommand measures, per iteration, Engine.Create of a
// gVisor sandbox of the base template and then its first command (`true`, run as
// the e2b clients run commands) over a new connection; the sandbox is killed
// outside the timer. Reports create, first-command and total (create to the
// command's end) p50/p99, and kill p50.
func BenchmarkEngineCreateFirstCommand(b *testing.B) { benchCreate(b, 0) }

// BenchmarkEngineCreateWarmPool is BenchmarkEngineCreateFirstCommand with a warm pool
// of two sandboxes of the created shape, as `lelantos serve` keeps for base; each
// iteration waits, untimed, until the pool has refilled.
func BenchmarkEngineCreateWarmPool(b *testing.B) { benchCreate(b, 2) }

func benchCreate(b *testing.B, pool int) {
	r := newRig(b)
	ctx := context.Background()
	if pool > 0 {
		r.e.Close()
		r.e = r.node.EngineWith(b, func(o *engine.Options) {
			o.Warm = []engine.WarmPool{{Spec: r.spec(""), Size: pool}}
		})
	}
	waitPool := func() {
		for deadline := time.Now().Add(time.Minute); pool > 0 && r.e.Warm() < pool; {
			if time.Now().After(deadline) {
				b.Fatalf("the warm pool holds %d of %d sandboxes", r.e.Warm(), pool)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.StopTimer()
	waitPool()
	b.StartTimer()
	var creates, firsts, totals, kills []time.Duration
	i := 0
	for b.Loop() {
		s := r.spec(fmt.Sprintf("cfc%04d", i))
		i++
		t0 := time.Now()
		st, err := r.e.Create(ctx, s)
		if err != nil {
			b.Fatalf("create %s: %v", s.ID, err)
		}
		t1 := time.Now()
		hc := newClient()
		out, code, err := run(ctx, hc, st, "true")
		t2 := time.Now()
		hc.CloseIdleConnections()
		if err != nil || code != 0 {
			b.Fatalf("first command in %s: exit %d, %v: %s", s.ID, code, err, out)
		}
		b.StopTimer()
		k0 := time.Now()
		if err := r.e.Kill(ctx, s.ID); err != nil {
			b.Fatalf("kill %s: %v", s.ID, err)
		}
		kills = append(kills, time.Since(k0))
		waitPool()
		b.StartTimer()
		creates, firsts, totals = append(creates, t1.Sub(t0)), append(firsts, t2.Sub(t1)), append(totals, t2.Sub(t0))
	}
	reportDist(b, "total", totals)
	reportDist(b, "create", creates)
	reportDist(b, "firstcmd", firsts)
	b.ReportMetric(ms(percentile(kills, 50)), "kill-p50-ms")
}

// holdPython is a python3 program that keeps 200 MiB of touched memory, runs the
// statement announce once it holds it, then sleeps.
func holdPython(announce string) string {
	return "import os, time\nb = bytes([1]) * (200 << 20)\n" + announce + "\ntime.sleep(1e9)"
}

// holdReady is the announcement of the engine benchmark: python's pid, in
// /tmp/hold-ready.
const holdReady = `open("/tmp/hold-ready.tmp", "w").write(str(os.getpid())); os.rename("/tmp/hold-ready.tmp", "/tmp/hold-ready")`

// BenchmarkEnginePauseResume200MB measures Engine.Pause and Engine.Resume of a
// gVisor sandbox in which python3 holds 200 MiB of touched memory; one iteration is
// one pause and one resume. After each resume the same python process must still be
// there with its memory resident. Reports pause and resume p50 and max, the
// checkpoint image's size on disk and python's resident memory.
func BenchmarkEnginePauseResume200MB(b *testing.B) {
	r := newRig(b)
	ctx := context.Background()
	s := r.spec("pr200")
	st := r.create(b, s)
	must(b, st, "cat > /tmp/hold.py <<'EOF'\n"+holdPython(holdReady)+"\nEOF\nnohup python3 /tmp/hold.py >/dev/null 2>&1 &")
	pid := waitFor(b, st, "cat /tmp/hold-ready", 60*time.Second)
	rss := residentMB(b, st, pid)
	if rss < 190 {
		b.Fatalf("python holds %.0f MiB resident, want about 200", rss)
	}
	var pauses, resumes []time.Duration
	var imageMB float64
	for b.Loop() {
		t0 := time.Now()
		if _, err := r.e.Pause(ctx, s.ID); err != nil {
			b.Fatalf("pause: %v", err)
		}
		t1 := time.Now()
		b.StopTimer()
		imageMB = duMB(b, newestImage(b, filepath.Join(r.node.DataDir, "sandboxes", s.ID, "images")))
		b.StartTimer()
		t2 := time.Now()
		var err error
		if st, err = r.e.Resume(ctx, s.ID); err != nil {
			b.Fatalf("resume: %v", err)
		}
		t3 := time.Now()
		pauses, resumes = append(pauses, t1.Sub(t0)), append(resumes, t3.Sub(t2))
		b.StopTimer()
		if got := residentMB(b, st, pid); got < 190 {
			b.Fatalf("after resume python %s holds %.0f MiB resident, want about 200", pid, got)
		}
		b.StartTimer()
	}
	reportDist(b, "pause", pauses)
	reportDist(b, "resume", resumes)
	b.ReportMetric(ms(percentile(pauses, 100)), "pause-max-ms")
	b.ReportMetric(ms(percentile(resumes, 100)), "resume-max-ms")
	b.ReportMetric(imageMB, "image-MB")
	b.ReportMetric(rss, "resident-MB")
}

// residentMB is the resident memory of process pid in the sandbox, in MiB.
func residentMB(b *testing.B, st engine.Status, pid string) float64 {
	b.Helper()
	if _, err := strconv.Atoi(pid); err != nil {
		b.Fatalf("pid %q: %v", pid, err)
	}
	v, err := vmRSSMB(must(b, st, "cat /proc/"+pid+"/status"))
	if err != nil {
		b.Fatalf("sandbox %s: %v", st.Spec.ID, err)
	}
	return v
}

// newestImage is the directory of the last pause's image under images (one
// numbered directory per pause): the previous pause's is removed in the
// background after a pause returns, so all of images may still hold two.
func newestImage(b *testing.B, images string) string {
	b.Helper()
	entries, err := os.ReadDir(images)
	if err != nil {
		b.Fatalf("images of the sandbox: %v", err)
	}
	newest := -1
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && n > newest {
			newest = n
		}
	}
	if newest < 0 {
		b.Fatalf("no image under %s", images)
	}
	return filepath.Join(images, strconv.Itoa(newest))
}

// duMB is the disk space the files under dir take, in MB (10^6 bytes), as du counts.
func duMB(b *testing.B, dir string) float64 {
	b.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		b.Fatalf("size of %s: %v", dir, err)
	}
	return float64(total) / 1e6
}

// BenchmarkEngineFork10 measures Engine.Fork of a paused gVisor sandbox into
// BENCH_FORKS (default 10) sandboxes; one iteration is one Fork call, after which
// every fork must answer a command and hold the source's file, and is killed outside
// the timer. The baseline, in the same run, is Engine.Resume of the same paused
// source: one restore of the same image. Reports the Fork call's p50, the time per
// fork, and resume p50.
func BenchmarkEngineFork10(b *testing.B) {
	r := newRig(b)
	ctx := context.Background()
	n := envInt(b, "BENCH_FORKS", 10)
	src := r.create(b, r.spec("fsrc"))
	must(b, src, "echo from-source > /root/marker")
	if _, err := r.e.Pause(ctx, src.Spec.ID); err != nil {
		b.Fatalf("pause source: %v", err)
	}
	var totals []time.Duration
	round := 0
	for b.Loop() {
		specs := make([]engine.Spec, n)
		for j := range specs {
			specs[j] = engine.Spec{ID: fmt.Sprintf("f%03dr%03d", j, round)}
		}
		round++
		t0 := time.Now()
		forks, err := r.e.Fork(ctx, src.Spec.ID, specs)
		if err != nil {
			b.Fatalf("fork into %d: %v", n, err)
		}
		totals = append(totals, time.Since(t0))
		b.StopTimer()
		for _, f := range forks {
			if got := must(b, f, "cat /root/marker"); got != "from-source" {
				b.Fatalf("fork %s: marker holds %q", f.Spec.ID, got)
			}
			if err := r.e.Kill(ctx, f.Spec.ID); err != nil {
				b.Fatalf("kill fork %s: %v", f.Spec.ID, err)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	var resumes []time.Duration
	for range 3 {
		t0 := time.Now()
		st, err := r.e.Resume(ctx, src.Spec.ID)
		if err != nil {
			b.Fatalf("resume source: %v", err)
		}
		resumes = append(resumes, time.Since(t0))
		must(b, st, "true")
		if _, err := r.e.Pause(ctx, src.Spec.ID); err != nil {
			b.Fatalf("pause source: %v", err)
		}
	}
	total := percentile(totals, 50)
	b.ReportMetric(ms(total), "fork-total-p50-ms")
	b.ReportMetric(ms(total)/float64(n), "per-fork-ms")
	b.ReportMetric(float64(n), "forks")
	b.ReportMetric(ms(percentile(resumes, 50)), "resume-p50-ms")
}

// BenchmarkEnvdCommandTrue runs commands in one gVisor sandbox through its daemon's
// process API over one kept-alive connection, straight to the sandbox's address (no
// proxy, no client library). One iteration is /bin/true exec'd directly, then
// `bash -l -c true`, the login shell the e2b clients' commands.run wraps every
// command in. Reports the p50 and p99 of each: the daemon's own round trip, and what
// the shell adds to it.
func BenchmarkEnvdCommandTrue(b *testing.B) {
	r := newRig(b)
	ctx := context.Background()
	st := r.create(b, r.spec("cmdtrue"))
	hc := newClient()
	defer hc.CloseIdleConnections()
	direct := &process.ProcessConfig{Cmd: "/bin/true"}
	for range 5 { // warm the connection and the page cache
		if _, code, err := start(ctx, hc, st, direct); err != nil || code != 0 {
			b.Fatalf("/bin/true: exit %d, %v", code, err)
		}
	}
	var directs, logins []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, code, err := start(ctx, hc, st, direct); err != nil || code != 0 {
			b.Fatalf("/bin/true: exit %d, %v", code, err)
		}
		t1 := time.Now()
		if out, code, err := run(ctx, hc, st, "true"); err != nil || code != 0 {
			b.Fatalf("bash -l -c true: exit %d, %v: %s", code, err, out)
		}
		directs, logins = append(directs, t1.Sub(t0)), append(logins, time.Since(t1))
	}
	reportDist(b, "direct", directs)
	reportDist(b, "bashlogin", logins)
}
