package process

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the pumps' concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStartCommandOutputReachesTheConsole: the output of a process tagged as
// the template's start command is copied to the console, besides its stream;
// other processes' output is not.
func TestStartCommandOutputReachesTheConsole(t *testing.T) {
	tag := func(s string) *string { return &s }
	tests := []struct {
		name     string
		tag      *string
		mirrored bool
	}{
		{"start command", tag(StartCommandTag), true},
		{"another tag", tag("server"), false},
		{"no tag", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			console := &lockedBuffer{}
			h := newHarnessWith(t, []Option{WithConsole(console)})
			req := bash("echo to-stdout; echo to-stderr >&2")
			req.Tag = tc.tag
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := h.run(ctx, t, req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.stdout != "to-stdout\n" || r.stderr != "to-stderr\n" {
				t.Fatalf("the stream lost output: stdout %q, stderr %q", r.stdout, r.stderr)
			}
			got := console.String()
			has := strings.Contains(got, "to-stdout\n") && strings.Contains(got, "to-stderr\n")
			if has != tc.mirrored || (!tc.mirrored && got != "") {
				t.Errorf("console holds %q; want the output copied: %v", got, tc.mirrored)
			}
		})
	}
}
