// Package bench holds Lelantos' whole-system benchmarks: real engines running real
// gVisor sandboxes (create to first command, pause and resume with memory resident,
// fork, idle memory), each beside a baseline measured in the same run (runsc and runc
// started by hand on the same root filesystem, a local fork and exec).
//
// The benchmarks need root and the project's cached runsc and base template; they run
// through enginetest.Main, so every veth and firewall rule they make stays in a private
// network namespace. Counts come from -benchtime and from BENCH_* environment
// variables. scripts/bench.sh (`make bench`) runs them together with the packages'
// own benchmarks and the e2b client measurements (envd.mjs), and cmd/benchreport turns
// the results into the report that docs/benchmarks.md records.
package bench
