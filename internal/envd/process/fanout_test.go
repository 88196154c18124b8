package process

import (
	"strings"
	"testing"
)

func textEvent(s string) (queued, string) {
	ev := dataEvent(stdoutKind, []byte(s))
	return queued{ev: ev, size: len(s)}, s
}

func drainText(f *fanout, s *subscriber) string {
	items, _ := f.take(s)
	var b strings.Builder
	for _, it := range items {
		b.Write(it.ev.GetData().GetStdout())
	}
	return b.String()
}

func TestFanoutBacklogAndRequeue(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, f *fanout)
	}{
		{"backlog keeps the newest megabyte", func(t *testing.T, f *fanout) {
			chunk := strings.Repeat("a", 64<<10)
			for i := 0; i < 48; i++ {
				f.publish(dataEvent(stdoutKind, []byte(chunk)), len(chunk))
			}
			f.publish(dataEvent(stdoutKind, []byte("tail")), 4)
			got := drainText(f, f.subscribe())
			if len(got) > maxBacklog || !strings.HasSuffix(got, "tail") || len(got) < maxBacklog-len(chunk) {
				t.Fatalf("backlog of %d bytes", len(got))
			}
		}},
		{"a stream's untaken events go back to the backlog", func(t *testing.T, f *fanout) {
			s := f.subscribe()
			for _, w := range []string{"1", "2", "3"} {
				q, _ := textEvent(w)
				f.publish(q.ev, q.size)
			}
			items, _ := f.take(s)
			f.requeue(s, items[1:])
			f.unsubscribe(s)
			q, _ := textEvent("4")
			f.publish(q.ev, q.size)
			if got := drainText(f, f.subscribe()); got != "234" {
				t.Fatalf("next stream got %q, want 234", got)
			}
		}},
		{"a second stream gets no replay while one is attached", func(t *testing.T, f *fanout) {
			a := f.subscribe()
			q, _ := textEvent("x")
			f.publish(q.ev, q.size)
			b := f.subscribe()
			if got := drainText(f, b); got != "" {
				t.Fatalf("second stream got %q", got)
			}
			q, _ = textEvent("y")
			f.publish(q.ev, q.size)
			if got, got2 := drainText(f, a), drainText(f, b); got != "xy" || got2 != "y" {
				t.Fatalf("a %q b %q", got, got2)
			}
		}},
		{"end only after the queue is empty", func(t *testing.T, f *fanout) {
			s := f.subscribe()
			q, _ := textEvent("z")
			f.publish(q.ev, q.size)
			f.finish(dataEvent(stderrKind, nil))
			if items, end := f.take(s); len(items) != 1 || end != nil {
				t.Fatalf("first take: %d items, end %v", len(items), end)
			}
			if items, end := f.take(s); len(items) != 0 || end == nil {
				t.Fatalf("second take: %d items, end %v", len(items), end)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newFanout()) })
	}
}
