package main

import "fmt"

// ratio is a / b as a multiple, measured only when both are.
func ratio(a, b val) val {
	if !a.ok || !b.ok || b.v <= 0 {
		return val{text: "not measured"}
	}
	return newVal(a.v/b.v, true, "%.2f×")
}

// clientSection is what a user of the npm e2b client feels (tests/bench/client.mjs),
// each figure beside its floor from the same run.
func clientSection(r *results) section {
	ms := func(path string) val { return r.jm("client."+path, "%.1f ms") }
	both := func(path string) val { return ms(path + ".p50").plus(" / " + ms(path+".p99").text) }
	runscTrue := "`runsc run /bin/true` by hand p50 " + r.bm(baseRunscTrue, "run-p50-ms", "%.1f ms").text
	ckpt := r.bm(baseCheckpoint, "checkpoint-p50-ms", "%.1f ms")
	restore := r.bm(baseCheckpoint, "restore-p50-ms", "%.1f ms")
	rawTrue, health := ms("rawTrueMs.p50"), ms("healthProxyMs.p50")
	rows := []row{
		{"create to first `commands.run('true')`, one after another, p50 / p99 (n=" + r.jm("client.createFirstMs.n", "%.0f").text + ")",
			both("createFirstMs"), atMost(60, "ms"), runscTrue},
		{"of which p99 / p50", ratio(ms("createFirstMs.p99"), ms("createFirstMs.p50")), atMost(2, "×"), ""},
		{fmt.Sprintf("create to first command in bursts of %s concurrent creates, p50 / p99 (%s rounds)",
			r.jm("client.burstFirstMs.size", "%.0f").text, r.jm("client.burstFirstMs.rounds", "%.0f").text),
			both("burstFirstMs"), atMost(60, "ms"), runscTrue},
		{"of which p99 / p50", ratio(ms("burstFirstMs.p99"), ms("burstFirstMs.p50")), atMost(2, "×"), ""},
		{"`commands.run('true')`, p50 / p99 (n=" + r.jm("client.commandTrueMs.n", "%.0f").text + ")", both("commandTrueMs"), target{},
			"`/bin/true` through envd's process API without a shell, through the proxy: " + both("rawTrueMs").text},
		{"`commands.run('true')` p50 / the no-shell `/bin/true` p50", ratio(ms("commandTrueMs.p50"), rawTrue), atMost(1.5, "×"), ""},
		{"`files.read` of 20 bytes, p50 / p99", both("readMs"), target{},
			"GET envd `/health` through the proxy " + both("healthProxyMs").text + "; without it " + both("healthDirectMs").text},
		{"`files.read` p50 / the proxied `/health` p50", ratio(ms("readMs.p50"), health), atMost(1.3, "×"), ""},
		{"`files.write` of 20 bytes, p50 / p99", both("writeMs"), target{}, "proxied `/health` " + health.text},
		{"`files.write` p50 / the proxied `/health` p50", ratio(ms("writeMs.p50"), health), target{}, ""},
		{"`betaPause()` with 200 MiB resident, p50 (n=" + r.jm("client.pauseMs.n", "%.0f").text + ")", ms("pauseMs.p50"), target{},
			"`runsc checkpoint` by hand " + ckpt.text},
		{"pause p50 / runsc checkpoint p50", ratio(ms("pauseMs.p50"), ckpt), atMost(1.25, "×"), ""},
		{"`Sandbox.connect()` of it and a first command, p50", ms("resumeFirstCommandMs.p50"), target{},
			"`runsc restore --detach` by hand " + restore.text},
		{"resume p50 / runsc restore p50", ratio(ms("resumeFirstCommandMs.p50"), restore), atMost(1.25, "×"), ""},
		{"create to first command from code-interpreter-v1, p50 / p99 " + orSkipped(r.str("client.interpreterFirstMs.skipped")),
			both("interpreterFirstMs"), target{}, ""},
	}
	return section{title: "Through the e2b client: what a user feels, beside its floor", rows: rows}
}

// orSkipped is why a measurement was skipped, in brackets, or nothing.
func orSkipped(why string) string {
	if why == "" {
		return ""
	}
	return "(skipped: " + why + ")"
}
