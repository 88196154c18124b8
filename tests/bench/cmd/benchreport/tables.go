package main

import "fmt"

// target is a figure's goal: at most (or at least) limit; a zero target has none.
type target struct {
	atLeast bool
	limit   float64
	unit    string
}

func atMost(v float64, unit string) target  { return target{limit: v, unit: unit} }
func atLeast(v float64, unit string) target { return target{atLeast: true, limit: v, unit: unit} }

func (t target) String() string {
	switch {
	case t.unit == "":
		return "none set"
	case t.atLeast:
		return fmt.Sprintf("≥ %g %s", t.limit, t.unit)
	}
	return fmt.Sprintf("≤ %g %s", t.limit, t.unit)
}

// val is a measured value and its text, or a value that was not measured.
type val struct {
	text string
	v    float64
	ok   bool
}

func newVal(v float64, ok bool, format string) val {
	if !ok {
		return val{text: "not measured"}
	}
	return val{text: fmt.Sprintf(format, v), v: v, ok: true}
}

// plus appends text to the value's text.
func (v val) plus(text string) val { v.text += text; return v }

func (v val) String() string { return v.text }

// bm is a benchmark's metric.
func (r *results) bm(bench, unit, format string) val {
	v, ok := r.metric(bench, unit)
	return newVal(v, ok, format)
}

// jm is a number of envd.json.
func (r *results) jm(path, format string) val {
	v, ok := r.json(path)
	return newVal(v, ok, format)
}

// opMs is a benchmark's ns/op in milliseconds.
func (r *results) opMs(bench string) val {
	v, ok := r.metric(bench, "ns/op")
	return newVal(v/1e6, ok, "%.2f ms")
}

// row is one line of a table.
type row struct {
	measure  string
	fig      val
	target   target
	baseline string
}

func (r row) status() string {
	switch {
	case !r.fig.ok:
		return "not measured"
	case r.target.unit == "":
		return ""
	case r.target.atLeast && r.fig.v >= r.target.limit, !r.target.atLeast && r.fig.v <= r.target.limit:
		return "met"
	}
	return "**missed**"
}

type section struct {
	title string
	rows  []row
}

func sections(r *results) []section {
	return []section{clientSection(r), engineSection(r), envdSection(r), controlSection(r)}
}

// Benchmark names of tests/bench.
const (
	benchCreate     = "BenchmarkEngineCreateFirstCommand"
	benchCreateWarm = "BenchmarkEngineCreateWarmPool"
	benchPause      = "BenchmarkEnginePauseResume200MB"
	benchFork       = "BenchmarkEngineFork10"
	benchIdle       = "BenchmarkEngineIdleDensity"
	baseIdleRunc    = "BenchmarkBaselineIdleDensityRunc"
	baseRunscTrue   = "BenchmarkBaselineRunscTrue"
	baseRuncTrue    = "BenchmarkBaselineRuncTrue"
	baseCheckpoint  = "BenchmarkBaselineRunscCheckpointRestore200MB"
	baseForkExec    = "BenchmarkBaselineForkExecTrue"
	benchEnvdCmd    = "BenchmarkEnvdCommandTrue"
)

func engineSection(r *results) section {
	n := func(bench string) string { return r.bm(bench, "iterations", "%.0f").text }
	trueBase := func(p string) string {
		return fmt.Sprintf("`runsc run /bin/true` %s; `runc run /bin/true` %s",
			r.bm(baseRunscTrue, "run-"+p+"-ms", "%.1f ms"), r.bm(baseRuncTrue, "run-"+p+"-ms", "%.1f ms"))
	}
	runcIdle := func(unit, format string) string { return "runc class: " + r.bm(baseIdleRunc, unit, format).text }
	runcFit := runcIdle("fit-24GiB-host", "%.0f")
	if v, ok := r.metric(baseIdleRunc, "host-MiB-per-sandbox"); ok && v <= 0 {
		runcFit = "runc class: no measurable MemAvailable drop"
	}
	rows := []row{
		{"create to first command (`true`), p50 (n=" + n(benchCreate) + ")", r.bm(benchCreate, "total-p50-ms", "%.1f ms"), atMost(50, "ms"), trueBase("p50")},
		{"create to first command, p99", r.bm(benchCreate, "total-p99-ms", "%.1f ms"), target{}, trueBase("p99")},
		{"with a warm pool of 2 (serve's default): create to first command, p50 / p99 (n=" + n(benchCreateWarm) + ")",
			r.bm(benchCreateWarm, "total-p50-ms", "%.1f ms").plus(" / " + r.bm(benchCreateWarm, "total-p99-ms", "%.1f ms").text), atMost(50, "ms"), trueBase("p50")},
		{"with a warm pool: Engine.Create alone, p50 / p99", r.bm(benchCreateWarm, "create-p50-ms", "%.1f ms").plus(" / " + r.bm(benchCreateWarm, "create-p99-ms", "%.1f ms").text), target{}, ""},
		{"of which Engine.Create, p50 / p99", r.bm(benchCreate, "create-p50-ms", "%.1f ms").plus(" / " + r.bm(benchCreate, "create-p99-ms", "%.1f ms").text), target{}, ""},
		{"of which the first command, p50 / p99", r.bm(benchCreate, "firstcmd-p50-ms", "%.1f ms").plus(" / " + r.bm(benchCreate, "firstcmd-p99-ms", "%.1f ms").text), target{}, ""},
		{"kill, p50", r.bm(benchCreate, "kill-p50-ms", "%.1f ms"), target{}, ""},
		{"pause, python holding 200 MiB, p50 (n=" + n(benchPause) + ")", r.bm(benchPause, "pause-p50-ms", "%.1f ms"), atMost(150, "ms"),
			fmt.Sprintf("`runsc checkpoint` by hand %s (until stopped %s)", r.bm(baseCheckpoint, "checkpoint-p50-ms", "%.1f ms"), r.bm(baseCheckpoint, "checkpoint-stopped-p50-ms", "%.1f ms"))},
		{"pause, max", r.bm(benchPause, "pause-max-ms", "%.1f ms"), target{}, ""},
		{"resume, python holding 200 MiB, p50", r.bm(benchPause, "resume-p50-ms", "%.1f ms"), atMost(150, "ms"),
			"`runsc restore --detach` by hand " + r.bm(baseCheckpoint, "restore-p50-ms", "%.1f ms").text},
		{"resume, max", r.bm(benchPause, "resume-max-ms", "%.1f ms"), target{}, ""},
		{"checkpoint image on disk (du)", r.bm(benchPause, "image-MB", "%.0f MB"), target{}, "by hand " + r.bm(baseCheckpoint, "image-MB", "%.0f MB").text},
		{"fork a paused sandbox into " + r.bm(benchFork, "forks", "%.0f").text + ": one Fork call, p50 (n=" + n(benchFork) + ")", r.bm(benchFork, "fork-total-p50-ms", "%.0f ms"), target{}, ""},
		{"per fork", r.bm(benchFork, "per-fork-ms", "%.1f ms"), target{},
			"Engine.Resume of the same paused source (one restore) " + r.bm(benchFork, "resume-p50-ms", "%.1f ms").text},
		{"idle sandbox (512 MB, envd only): host MemAvailable drop per sandbox, " + r.bm(benchIdle, "sandboxes", "%.0f").text + " sandboxes",
			r.bm(benchIdle, "host-MiB-per-sandbox", "%.1f MiB"), target{},
			runcIdle("host-MiB-per-sandbox", "%.1f MiB") + " (" + r.bm(baseIdleRunc, "sandboxes", "%.0f").text + " sandboxes)"},
		{"idle sandbox: cgroup memory usage p50 (non-cache part)",
			r.bm(benchIdle, "cgroup-p50-MiB", "%.1f MiB").plus(" (" + r.bm(benchIdle, "cgroup-noncache-p50-MiB", "%.1f MiB").text + ")"), target{},
			runcIdle("cgroup-p50-MiB", "%.1f MiB") + " (" + r.bm(baseIdleRunc, "cgroup-noncache-p50-MiB", "%.1f MiB").text + ")"},
		{"idle sandboxes that fit in 24 GiB, by cgroup usage", r.bm(benchIdle, "fit-24GiB-cgroup", "%.0f"), atLeast(500, "sandboxes"), runcIdle("fit-24GiB-cgroup", "%.0f")},
		{"idle sandboxes that fit in 24 GiB, by the MemAvailable drop", r.bm(benchIdle, "fit-24GiB-host", "%.0f"), atLeast(500, "sandboxes"), runcFit},
	}
	return section{title: "Engine: a real engine, gVisor sandboxes of the base template", rows: rows}
}

func envdSection(r *results) section {
	mb := r.jm("transfer.sizeMiB", "%.0f").text
	upBase := "to a local file server: curl " + r.jm("transfer.localUpload.p50MBps", "%.0f MB/s").text +
		", node fetch " + r.jm("transfer.localFetchUpload.p50MBps", "%.0f MB/s").text
	downBase := "from a local file server: curl " + r.jm("transfer.localDownload.p50MBps", "%.0f MB/s").text +
		", node fetch " + r.jm("transfer.localFetchDownload.p50MBps", "%.0f MB/s").text
	rows := []row{
		{"`commands.run('true')` round trip, p50 (n=" + r.jm("commands.roundTripMs.n", "%.0f").text + ")", r.jm("commands.roundTripMs.p50", "%.2f ms"), atMost(5, "ms"),
			"local spawn of /bin/true from node " + r.jm("commands.localSpawnMs.p50", "%.2f ms").text + "; from Go " + r.bm(baseForkExec, "p50-µs", "%.0f µs").text},
		{"`commands.run('true')` round trip, p99", r.jm("commands.roundTripMs.p99", "%.2f ms"), target{}, "node spawn " + r.jm("commands.localSpawnMs.p99", "%.2f ms").text},
		{"envd process API straight to the sandbox (Go client, kept-alive connection): `bash -l -c true`, p50 (n=" + r.bm(benchEnvdCmd, "iterations", "%.0f").text + ")",
			r.bm(benchEnvdCmd, "bashlogin-p50-ms", "%.2f ms"), target{}, "`/bin/true` exec'd directly, no shell: " + r.bm(benchEnvdCmd, "direct-p50-ms", "%.2f ms").text +
				" (p99 " + r.bm(benchEnvdCmd, "direct-p99-ms", "%.2f ms").text + ")"},
		{"inside the sandbox: `bash -l -c true` (what commands.run execs), mean of 50", r.jm("commands.insideBashLoginMs", "%.2f ms"), target{},
			"`/bin/true` inside the sandbox " + r.jm("commands.insideTrueMs", "%.2f ms").text},
		{"upload " + mb + " MiB: e2b `files.write` (stream) through the proxy, p50", r.jm("transfer.e2bUpload.p50MBps", "%.0f MB/s"), atLeast(300, "MB/s"), upBase},
		{"upload " + mb + " MiB: curl POST /files (octet-stream) through the proxy, p50", r.jm("transfer.curlUpload.p50MBps", "%.0f MB/s"), atLeast(300, "MB/s"), upBase},
		{"download " + mb + " MiB: e2b `files.read` (stream) through the proxy, p50", r.jm("transfer.e2bDownload.p50MBps", "%.0f MB/s"), atLeast(300, "MB/s"), downBase},
		{"download " + mb + " MiB: curl GET /files through the proxy, p50", r.jm("transfer.curlDownload.p50MBps", "%.0f MB/s"), atLeast(300, "MB/s"), downBase},
		{"download " + mb + " MiB: curl GET /files through the proxy with `Accept-Encoding: gzip` (as node's fetch sends; envd compresses), p50",
			r.jm("transfer.curlGzipDownload.p50MBps", "%.0f MB/s"), target{}, downBase},
		{"the proxy alone (in-process, 64 MiB, HTTP/1.1): download", r.bm("BenchmarkProxyDownload/http1", "MB/s", "%.0f MB/s"), target{},
			"direct " + r.bm("BenchmarkDirectDownload", "MB/s", "%.0f MB/s").text},
		{"the proxy alone (in-process, 64 MiB, HTTP/1.1): upload", r.bm("BenchmarkProxyUpload/http1", "MB/s", "%.0f MB/s"), target{},
			"direct " + r.bm("BenchmarkDirectUpload", "MB/s", "%.0f MB/s").text},
		{"envd idle RSS (VmRSS of pid 1, `" + r.str("idle.pid1") + "`, inside)", r.jm("idle.envdRssMiB", "%.1f MiB"), target{},
			"grep's own VmRSS inside " + r.jm("idle.grepRssMiB", "%.1f MiB").text},
		{"idle sandbox from the host: cgroup usage (PSS of its " + r.jm("idle.host.processes", "%.0f").text + " runsc processes)",
			r.jm("idle.host.cgroupUsageMiB", "%.1f MiB").plus(" (" + r.jm("idle.host.processesPssMiB", "%.1f MiB").text + ")"), target{}, ""},
		{"envd RSS after the commands and transfers", r.jm("afterLoad.envdRssMiB", "%.1f MiB"), target{}, ""},
	}
	return section{title: "envd: the npm e2b client (e2b@2.51.0) against a server", rows: rows}
}

func controlSection(r *results) section {
	apiCreate := r.jm("apiCreateMs.p50", "%.1f ms")
	engCreate := r.bm(benchCreate, "create-p50-ms", "%.1f ms")
	createBase := "Engine.Create p50 in the engine benchmark " + engCreate.text
	if apiCreate.ok && engCreate.ok {
		createBase += fmt.Sprintf("; difference %.1f ms", apiCreate.v-engCreate.v)
	}
	rows := []row{
		{"API create overhead: POST /v2/sandboxes with a no-op node, mean (BenchmarkCreateOverhead)", r.opMs("BenchmarkCreateOverhead"), target{},
			"one fsynced store insert, mean " + r.opMs("BenchmarkInsertSandbox").text},
		{"POST /sandboxes wall time with the real node, p50 (n=" + r.jm("apiCreateMs.n", "%.0f").text + ")", apiCreate, target{}, createBase},
		{"create through the control plane on PostgreSQL (no-op node, durable commits), p50 / p99 (BenchmarkControlPlaneCreate)",
			r.bm("BenchmarkControlPlaneCreate/postgres", "create-p50-µs", "%.0f µs").plus(" / " +
				r.bm("BenchmarkControlPlaneCreate/postgres", "create-p99-µs", "%.0f µs").text), target{},
			"on SQLite " + r.bm("BenchmarkControlPlaneCreate/sqlite", "create-p50-µs", "%.0f µs").text + " / " +
				r.bm("BenchmarkControlPlaneCreate/sqlite", "create-p99-µs", "%.0f µs").text},
		{"e2b `Sandbox.create()`, one", r.jm("clientCreateMs", "%.1f ms"), target{}, ""},
		{"list with 10,000 sandboxes stored: GET /v2/sandboxes?state=running, a page of 100, mean (BenchmarkList10k)", r.opMs("BenchmarkList10k"), target{},
			"the store query alone " + r.bm("BenchmarkListSandboxes10k/running", "p50-µs", "%.0f µs").text + " p50"},
		{"list with 10,000 sandboxes stored: metadata filter, a page of 100, mean", r.opMs("BenchmarkList10kMetadata"), target{},
			"the store query alone " + r.bm("BenchmarkListSandboxes10k/metadata", "p50-µs", "%.0f µs").text + " p50"},
		{"network setup for one sandbox (namespace, veth, firewall), p50", r.bm("BenchmarkSetupTeardown", "setup-p50-ms", "%.1f ms").
			plus(" (teardown " + r.bm("BenchmarkSetupTeardown", "teardown-p50-ms", "%.1f ms").text + ")"), target{}, ""},
	}
	return section{title: "Control plane", rows: rows}
}
