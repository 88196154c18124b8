// Command benchreport turns the raw results of scripts/bench.sh into one markdown
// report: the machine, the command, a table per issue (figure, target, baseline
// measured in the same run) and the raw benchmark lines.
//
//	benchreport -dir RESULTS [-command CMD] [-settings S] [-runsc VERSION] [-commit C]
//	            [-took T] [-load-start "1 5 15"]
//
// RESULTS holds engine.txt and packages.txt (go test -bench output), envd.json
// (tests/bench/envd.mjs) and features.json (tests/bench/features.mjs); any of them
// may be missing, and its rows then say so.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	dir := flag.String("dir", "", "directory holding engine.txt, packages.txt, envd.json and features.json")
	command := flag.String("command", "make bench", "the command that produced the results")
	settings := flag.String("settings", "", "the settings it ran with (BENCH_* variables)")
	runsc := flag.String("runsc", "", "the runsc version the sandboxes ran on")
	commit := flag.String("commit", "", "the source's version (git describe)")
	took := flag.String("took", "", "how long the whole run took")
	loadStart := flag.String("load-start", "", "the host's /proc/loadavg when the run started")
	flag.Parse()
	if *dir == "" {
		log.Fatal("benchreport: -dir is required")
	}
	r := &results{bench: map[string]map[string]float64{}}
	var raw []string
	for _, f := range []string{"packages.txt", "engine.txt"} {
		lines, err := r.readBench(filepath.Join(*dir, f))
		if err != nil {
			log.Fatalf("benchreport: %v", err)
		}
		raw = append(raw, lines...)
	}
	if b, err := os.ReadFile(filepath.Join(*dir, "envd.json")); err == nil {
		if err := json.Unmarshal(b, &r.envd); err != nil {
			log.Fatalf("benchreport: envd.json: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(*dir, "features.json")); err == nil {
		if err := json.Unmarshal(b, &r.features); err != nil {
			log.Fatalf("benchreport: features.json: %v", err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(*dir, "cluster.json")); err == nil {
		var c map[string]any
		if err := json.Unmarshal(b, &c); err != nil {
			log.Fatalf("benchreport: cluster.json: %v", err)
		}
		if r.features == nil {
			r.features = map[string]any{}
		}
		r.features["cluster"] = c
	}
	m := machineInfo()
	m.runsc, m.commit = *runsc, *commit
	render(os.Stdout, r, m, run{command: *command, settings: *settings, took: *took, loadStart: *loadStart}, raw)
}

// results are the figures of one run.
type results struct {
	// bench maps a benchmark's name (without the -GOMAXPROCS suffix) to its
	// metrics by unit.
	bench    map[string]map[string]float64
	envd     map[string]any
	features map[string]any
}

// readBench reads go test -bench output from path, keeps its benchmark lines and
// returns them. A missing file is no error.
func (r *results) readBench(path string) ([]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		n, _ := strconv.ParseFloat(fields[1], 64)
		metrics := map[string]float64{"iterations": n}
		for i := 2; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				metrics[fields[i+1]] = v
			}
		}
		r.bench[name] = metrics
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// metric is one benchmark metric and whether it was measured.
func (r *results) metric(bench, unit string) (float64, bool) {
	v, ok := r.bench[bench][unit]
	return v, ok
}

// json is the number at a dotted path of envd.json and whether it is there.
func (r *results) json(path string) (float64, bool) {
	var cur any = r.envd
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		cur = m[k]
	}
	v, ok := cur.(float64)
	return v, ok
}

// str is the string at a dotted path of envd.json, or "".
func (r *results) str(path string) string {
	var cur any = r.envd
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[k]
	}
	s, _ := cur.(string)
	return s
}

// machine describes the host the run was on.
type machine struct {
	nproc                         int
	memGiB                        float64
	kernel, cpu, goVersion, runsc string
	commit                        string
}

func machineInfo() machine {
	m := machine{nproc: goruntime.NumCPU(), goVersion: goruntime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.cpu = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64); err == nil {
		m.memGiB = kb / (1 << 20)
	}
	return m
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// run describes how the results were made.
type run struct{ command, settings, took, loadStart string }

// render writes the report.
func render(w io.Writer, r *results, m machine, how run, raw []string) {
	fmt.Fprintf(w, "# Lelantos benchmark report, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- Command: `%s`", how.command)
	if how.settings != "" {
		fmt.Fprintf(w, " with `%s`", how.settings)
	}
	if how.took != "" {
		fmt.Fprintf(w, "; the whole run took %s", how.took)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- Machine: nproc %d, %.1f GiB memory, kernel %s, CPU %q\n", m.nproc, m.memGiB, m.kernel, m.cpu)
	fmt.Fprintf(w, "- Load average (1, 5, 15 min) at the start: %s; at the end: %s\n", orUnknown(how.loadStart), loadavg())
	fmt.Fprintf(w, "- Software: %s, runsc %s, source %s\n", m.goVersion, orUnknown(m.runsc), orUnknown(m.commit))
	fmt.Fprintln(w, "- Percentiles are nearest-rank over the iterations shown; MB = 10^6 bytes, MiB = 2^20 bytes.")
	fmt.Fprintln(w, "  Every baseline was measured in the same run on the same machine.")
	for _, s := range append(sections(r), featureSections(r)...) {
		fmt.Fprintf(w, "\n## %s\n\n", s.title)
		fmt.Fprintln(w, "| measure | figure | target | baseline (same run) | status |")
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
		for _, row := range s.rows {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", row.measure, row.fig.text, row.target, orDash(row.baseline), row.status())
		}
	}
	fmt.Fprintf(w, "\n## Benchmark lines\n\n```text\n%s\n```\n", strings.Join(raw, "\n"))
	if r.envd != nil {
		b, _ := json.MarshalIndent(r.envd, "", " ")
		fmt.Fprintf(w, "\n<details><summary>envd.json (e2b client measurements)</summary>\n\n```json\n%s\n```\n</details>\n", b)
	}
	featuresDetails(w, r)
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
