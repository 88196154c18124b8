package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"lelantos.dev/lelantos/internal/client"
)

// logPage is the number of log lines asked per request.
const logPage = 1000

// logPoll is how often logs -f asks for new lines.
const logPoll = time.Second

// sandboxLogs prints a sandbox's log, and with -f follows it until
// interrupted.
func sandboxLogs(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("logs", &api)
	follow := fs.Bool("f", false, "follow the log: print new lines as they come, until interrupted")
	fs.BoolVar(follow, "follow", false, "same as -f")
	var since time.Duration
	fs.Var(sinceFlag{&since}, "since", "only lines of this last duration, e.g. 10m (default: all)")
	id, c, err := oneSandbox(fs, &api, args)
	if err != nil {
		return err
	}
	cur := logCursor{seen: map[string]int{}}
	if since > 0 {
		cur.start = time.Now().Add(-since)
	}
	for {
		lines, err := c.Logs(ctx, id, cur.start, logPage)
		if ctx.Err() != nil {
			return nil // interrupted while following
		}
		if err != nil {
			return err
		}
		fresh, advanced := cur.next(lines)
		for _, l := range fresh {
			fmt.Printf("%s  %s\n", l.Timestamp.Local().Format("2006-01-02 15:04:05.000"), l.Line)
		}
		if len(lines) == logPage && advanced {
			continue // more is waiting
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logPoll):
		}
	}
}

// logCursor pages through a log whose query bound (start, in whole
// milliseconds) is inclusive: it remembers the lines already printed at the
// bound so that the next page does not print them again.
type logCursor struct {
	start time.Time
	// seen counts the printed lines at or after start, by logKey.
	seen map[string]int
}

// logKey identifies a line by its time and text.
func logKey(l client.LogLine) string {
	return strconv.FormatInt(l.Timestamp.UnixNano(), 10) + " " + l.Line
}

// next returns the lines of a page not printed yet and moves the bound to
// the page's last line; advanced is false when the page brought nothing new.
func (c *logCursor) next(page []client.LogLine) (fresh []client.LogLine, advanced bool) {
	count := map[string]int{}
	for _, l := range page {
		k := logKey(l)
		count[k]++
		if count[k] > c.seen[k] {
			fresh = append(fresh, l)
		}
	}
	if len(page) == 0 {
		return nil, false
	}
	bound := page[len(page)-1].Timestamp.Truncate(time.Millisecond)
	seen := map[string]int{}
	for _, l := range page {
		if !l.Timestamp.Before(bound) {
			seen[logKey(l)]++
		}
	}
	c.start, c.seen = bound, seen
	return fresh, len(fresh) > 0
}

// sandboxMetrics prints a sandbox's recent resource samples.
func sandboxMetrics(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("metrics", &api)
	since := time.Minute
	fs.Var(sinceFlag{&since}, "since", "samples of this last duration (default 1m)")
	asJSON := fs.Bool("json", false, "print JSON")
	id, c, err := oneSandbox(fs, &api, args)
	if err != nil {
		return err
	}
	ms, err := c.Metrics(ctx, id, time.Now().Add(-since), time.Time{})
	if err != nil {
		return err
	}
	if *asJSON {
		if ms == nil {
			ms = []client.Metric{}
		}
		return printJSON(ms)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tCPUS\tCPU USED\tMEMORY USED\tMEMORY TOTAL\tDISK USED\tDISK TOTAL")
	for _, m := range ms {
		fmt.Fprintf(w, "%s\t%d\t%.1f%%\t%s\t%s\t%s\t%s\n", localTime(m.Timestamp), m.CPUCount, m.CPUUsedPct,
			mib(m.MemUsed), mib(m.MemTotal), mib(m.DiskUsed), mib(m.DiskTotal))
	}
	return w.Flush()
}
