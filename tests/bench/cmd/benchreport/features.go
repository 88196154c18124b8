package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The feature figures come from features.json, written by tests/bench/features.mjs:
// the code interpreter, E2B's sandbox features and template builds, each measured
// through the npm clients beside a baseline of the same run.

// lookup is the value at a dotted path of doc, or nil.
func lookup(doc map[string]any, path string) any {
	var cur any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// fnum is the number at a dotted path of features.json and whether it is there.
func (r *results) fnum(path string) (float64, bool) {
	v, ok := lookup(r.features, path).(float64)
	return v, ok
}

// fm is a number of features.json as a value.
func (r *results) fm(path, format string) val {
	v, ok := r.fnum(path)
	return newVal(v, ok, format)
}

// ratio is the figure at path as a multiple of the baseline at basePath: its value
// is the multiple, its text the figure and the multiple.
func (r *results) ratio(path, basePath string) val {
	v, ok := r.fnum(path)
	b, bok := r.fnum(basePath)
	if !ok || !bok || b <= 0 {
		return val{text: "not measured"}
	}
	return val{text: fmt.Sprintf("%.1f ms (%.2f× the baseline)", v, v/b), v: v / b, ok: true}
}

// ms is the number at path as milliseconds, for a baseline's text.
func (r *results) ms(path string) string { return r.fm(path, "%.1f ms").text }

// fn is the count n of a distribution at path, for a measure's text.
func (r *results) fn(path string) string { return r.fm(path+".n", "%.0f").text }

// featureSections are the report's tables of features.json.
func featureSections(r *results) []section {
	return []section{interpreterSection(r), sandboxFeatureSection(r), templateSection(r), clusterSection(r)}
}

func interpreterSection(r *results) section {
	const c = "interpreter.create."
	const b = "interpreter.backToBack."
	const idle = "interpreter.idle."
	fitHost := r.fm(idle+"interpreter.fit24GiBHost", "%.0f")
	if _, ok := r.fnum(idle + "interpreter.hostDropMiB"); ok && !fitHost.ok {
		fitHost.text = "no measurable MemAvailable drop"
	}
	rows := []row{
		{"create to first `runCode('1+1')` result, each create " + r.fm("interpreter.create.gapMs", "%.0f").text + " ms after the last kill, p50 (n=" + r.fn(c+"interpreter.totalMs") + ")",
			r.ratio(c+"interpreter.totalMs.p50", c+"base.totalMs.p50"), atMost(1.5, "× the baseline"),
			"base template: create to first `commands.run('true')` " + r.ms(c+"base.totalMs.p50")},
		{"create to first `runCode('1+1')` result, p99", r.ratio(c+"interpreter.totalMs.p99", c+"base.totalMs.p99"), atMost(1.5, "× the baseline"),
			"base template, p99 " + r.ms(c+"base.totalMs.p99")},
		{"of which `Sandbox.create()`, p50 / first `runCode`, p50", r.fm(c+"interpreter.createMs.p50", "%.1f ms").
			plus(" / " + r.ms(c+"interpreter.firstMs.p50")), target{},
			"base: create " + r.ms(c+"base.createMs.p50") + " / first command " + r.ms(c+"base.firstMs.p50")},
		{"the same back to back (each create as the last kill returns, beside the node's teardown and refills), p50 / p99",
			r.fm(b+"interpreter.totalMs.p50", "%.1f ms").plus(" / " + r.ms(b+"interpreter.totalMs.p99")), target{},
			"base template " + r.ms(b+"base.totalMs.p50") + " / " + r.ms(b+"base.totalMs.p99")},
		{"`runCode('1+1')` round trip, p50 (n=" + r.fn("interpreter.roundTrip.runCodeMs") + ")",
			r.ratio("interpreter.roundTrip.runCodeMs.p50", "interpreter.roundTrip.commandMs.p50"), atMost(1.5, "× the baseline"),
			"`commands.run('true')` on a base sandbox " + r.ms("interpreter.roundTrip.commandMs.p50")},
		{"`runCode('1+1')` round trip, p99", r.fm("interpreter.roundTrip.runCodeMs.p99", "%.1f ms"), target{},
			"`commands.run('true')` " + r.ms("interpreter.roundTrip.commandMs.p99")},
		{"idle interpreter sandbox: cgroup memory usage p50 (non-cache part), " + r.fm(idle+"interpreter.sandboxes", "%.0f").text + " sandboxes",
			r.fm(idle+"interpreter.cgroupP50MiB", "%.1f MiB").plus(" (" + r.fm(idle+"interpreter.noncacheP50MiB", "%.1f MiB").text + ")"), target{},
			"idle base sandbox " + r.fm(idle+"base.cgroupP50MiB", "%.1f MiB").text + " (" + r.fm(idle+"base.noncacheP50MiB", "%.1f MiB").text + ")"},
		{"idle interpreter sandbox: host MemAvailable drop per sandbox", r.fm(idle+"interpreter.hostDropMiB", "%.1f MiB"), target{},
			"idle base sandbox " + r.fm(idle+"base.hostDropMiB", "%.1f MiB").text},
		{"idle interpreter sandboxes that fit in 24 GiB, by cgroup usage / by the MemAvailable drop",
			r.fm(idle+"interpreter.fit24GiBCgroup", "%.0f").plus(" / " + fitHost.text), target{},
			"base: " + r.fm(idle+"base.fit24GiBCgroup", "%.0f").text + " / " + r.fm(idle+"base.fit24GiBHost", "%.0f").text},
	}
	return section{title: "Code interpreter: @e2b/code-interpreter@2.8.0 against a server, code-interpreter-v1", rows: rows}
}

func sandboxFeatureSection(r *results) section {
	createBase := "create from the base template to first command " + r.ms("fork.baseCreateMs.p50")
	rows := []row{
		{"`sandbox.fork()` of a running sandbox into 1: the call, p50 (n=" + r.fn("fork.x1.callMs") + ")", r.fm("fork.x1.callMs.p50", "%.1f ms"), target{}, createBase},
		{"fork into 1: the call to the child's first command, p50", r.fm("fork.x1.allFirstCommandMs.p50", "%.1f ms"), target{}, createBase},
		{"`sandbox.fork({ count: 10 })`: the call, p50 (n=" + r.fn("fork.x10.callMs") + ")", r.fm("fork.x10.callMs.p50", "%.1f ms"), target{}, createBase},
		{"fork into 10: the call to every child's first command, p50", r.fm("fork.x10.allFirstCommandMs.p50", "%.1f ms"), target{}, createBase},
		{"create from a snapshot to first command (`Sandbox.create(snapshotId)`), p50 (n=" + r.fn("snapshot.fromSnapshotMs") + ")",
			r.fm("snapshot.fromSnapshotMs.p50", "%.1f ms"), target{}, "from the base template, interleaved: " + r.ms("snapshot.fromTemplateMs.p50")},
		{"create from a snapshot, p99", r.fm("snapshot.fromSnapshotMs.p99", "%.1f ms"), target{}, "from the template " + r.ms("snapshot.fromTemplateMs.p99")},
		{"`sandbox.createSnapshot()`, one", r.fm("snapshot.createSnapshotMs", "%.1f ms"), target{}, ""},
		{"first byte of a request through the proxy that auto-resumes a paused sandbox, p50 (n=" + r.fn("autoResume.pausedFirstByteMs") + ")",
			r.fm("autoResume.pausedFirstByteMs.p50", "%.1f ms"), target{}, "the same request to it running " + r.fm("autoResume.runningFirstByteMs.p50", "%.2f ms").text},
		{"first byte of an auto-resuming request, p99", r.fm("autoResume.pausedFirstByteMs.p99", "%.1f ms"), target{},
			"running " + r.fm("autoResume.runningFirstByteMs.p99", "%.2f ms").text + "; `pause()` p50 " + r.ms("autoResume.pauseMs.p50")},
		{"download of " + r.fm("egress.sizeMiB", "%.0f").text + " MiB over HTTP by name, with an allowOut domain rule (Host checked by the egress proxy), p50",
			r.fm("egress.rules.p50MBps", "%.0f MB/s"), target{}, "no rules " + r.fm("egress.none.p50MBps", "%.0f MB/s").text},
		{"cost of the domain check on that download", r.fm("egress.slowerPct", "%.1f %% slower"), atMost(10, "% slower"),
			"first byte " + r.fm("egress.rules.firstByteP50Ms", "%.2f ms").text + " with rules, " + r.fm("egress.none.firstByteP50Ms", "%.2f ms").text + " without"},
	}
	return section{title: "Sandbox features: the npm e2b client (e2b@2.51.0) against a server", rows: rows}
}

func templateSection(r *results) section {
	steps := r.fm("templates.steps", "%.0f").text
	cold := "cold build of the same " + r.fm("templates.cold.totalMs", "%.0f ms").text
	rows := []row{
		{"`Template.build()` of a " + steps + "-step template, cold (" + r.fm("templates.rounds", "%.0f").text + " rounds, median)",
			r.fm("templates.cold.totalMs", "%.0f ms"), target{}, ""},
		{"rebuild with nothing changed (" + r.fm("templates.cached.cachedSteps", "%.0f").text + " steps from the cache)",
			r.fm("templates.cached.totalMs", "%.0f ms"), target{}, cold},
		{"rebuild with the last step changed (" + r.fm("templates.oneStep.cachedSteps", "%.0f").text + " steps from the cache)",
			r.fm("templates.oneStep.totalMs", "%.0f ms"), target{}, cold},
		{"`Template.build()` call to the first log line from the server, cold / cached / one step",
			r.fm("templates.cold.firstServerLogMs", "%.0f ms").plus(" / " + r.fm("templates.cached.firstServerLogMs", "%.0f ms").text +
				" / " + r.fm("templates.oneStep.firstServerLogMs", "%.0f ms").text), target{},
			"the SDK's own first line " + r.fm("templates.cold.firstLogMs", "%.2f ms").text},
	}
	return section{title: "Templates: the e2b SDK's Template API against a server", rows: rows}
}

// featuresDetails writes features.json, folded, when the run has it.
func featuresDetails(w io.Writer, r *results) {
	if r.features == nil {
		return
	}
	b, _ := json.MarshalIndent(r.features, "", " ")
	fmt.Fprintf(w, "\n<details><summary>features.json (code interpreter, sandbox features, templates)</summary>\n\n```json\n%s\n```\n</details>\n", b)
}
