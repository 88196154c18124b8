package main

import "fmt"

// The cluster figures come from cluster.json, written by tests/bench/cluster.mjs
// and kept in the results' features under "cluster": creates on SQLite and on
// PostgreSQL, creates per second with one node and two, and resumes on a
// sandbox's own node and on another.

// clusterSection is the report's table of cluster.json.
func clusterSection(r *results) section {
	const c = "cluster."
	perSec := func(path string) val { return r.fm(c+path, "%.2f creates/s") }
	two := perSec("throughput.twoNodesPerSec")
	if one, ok := r.fnum(c + "throughput.oneNodePerSec"); ok && two.ok && one > 0 {
		two = two.plus(fmt.Sprintf(" (%.2f× one node)", two.v/one))
	}
	rows := []row{
		{"`Sandbox.create()` one by one, PostgreSQL store, p50 (n=" + r.fn(c+"store.postgres.createMs") + ")",
			r.ratio(c+"store.postgres.createMs.p50", c+"store.sqlite.createMs.p50"), target{}, "SQLite store (the embedded default) " + r.ms(c+"store.sqlite.createMs.p50")},
		{"`Sandbox.create()`, PostgreSQL store, p99", r.ratio(c+"store.postgres.createMs.p99", c+"store.sqlite.createMs.p99"), target{},
			"SQLite " + r.ms(c+"store.sqlite.createMs.p99")},
		{"creates per second sustained (" + r.fm(c+"throughput.workers", "%.0f").text + " clients creating and killing for " +
			r.fm(c+"throughput.seconds", "%.0f s").text + "), two nodes on this machine", two, target{},
			"one node " + perSec("throughput.oneNodePerSec").text},
		{"resume of a sandbox with " + r.fm(c+"resume.residentMiB", "%.0f MiB").text + " resident on another node, its own stopped (the image moved): `Sandbox.connect()` and a first command, p50 (n=" +
			r.fn(c+"resume.movedMs") + ")", r.ratio(c+"resume.movedMs.p50", c+"resume.sameNodeMs.p50"), target{},
			"the same on its own node " + r.ms(c+"resume.sameNodeMs.p50")},
		{"resume on another node, p99", r.fm(c+"resume.movedMs.p99", "%.1f ms"), target{}, "on its own node " + r.ms(c+"resume.sameNodeMs.p99")},
	}
	return section{title: "Many nodes: the npm e2b client (e2b@2.51.0) against a server with a second node", rows: rows}
}
