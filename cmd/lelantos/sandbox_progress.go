package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progressThreshold is the size from which a copy shows its progress.
const progressThreshold = 4 << 20

// progressEvery is how often the progress line is redrawn.
const progressEvery = 200 * time.Millisecond

// progress draws a one-line progress bar of a copy on a terminal; it counts
// the bytes written to it. On anything but a terminal it draws nothing.
type progress struct {
	mu      sync.Mutex // Write may run on the HTTP transport's goroutine
	w       io.Writer
	label   string
	total   int64 // -1 when unknown
	done    int64
	start   time.Time
	drawn   time.Time
	enabled bool
	shown   bool
}

// newProgress returns the progress of a copy of total bytes (-1: unknown),
// drawn on f when f is a terminal.
func newProgress(f *os.File, label string, total int64) *progress {
	return &progress{w: f, label: label, total: total, start: time.Now(), enabled: term.IsTerminal(int(f.Fd()))}
}

// Write counts p and redraws the line when it is due.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(len(b))
	if p.enabled && time.Since(p.drawn) >= progressEvery && p.big() {
		p.draw()
	}
	return len(b), nil
}

// big reports whether the copy is large enough to be worth a bar.
func (p *progress) big() bool { return p.total > progressThreshold || p.done > progressThreshold }

// draw writes the line: label, bar, bytes, percentage and speed.
func (p *progress) draw() {
	p.drawn, p.shown = time.Now(), true
	rate := float64(p.done) / max(time.Since(p.start).Seconds(), 0.001)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s  %s  %s/s\033[K", p.label, mib(p.done), mib(int64(rate)))
		return
	}
	const width = 30
	frac := min(float64(p.done)/float64(p.total), 1)
	filled := int(frac * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < filled {
			bar[i] = '='
		}
	}
	fmt.Fprintf(p.w, "\r%s  [%s]  %s / %s  %3.0f%%  %s/s\033[K", p.label, bar, mib(p.done), mib(p.total),
		frac*100, mib(int64(rate)))
}

// finish draws the last state of a shown bar (complete when ok) and ends
// its line.
func (p *progress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.shown {
		return
	}
	if ok && p.total > 0 {
		p.done = p.total
	}
	p.draw()
	fmt.Fprintln(p.w)
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
