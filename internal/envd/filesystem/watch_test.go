package filesystem

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
)

// recorder collects events from a WatchDir stream in the background.
type recorder struct {
	mu         sync.Mutex
	events     []*pb.FilesystemEvent
	keepalives int
	err        error
	done       chan struct{}
}

func (r *recorder) has(name string, typ pb.EventType, withEntry bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.GetName() == name && e.GetType() == typ && (!withEntry || e.GetEntry() != nil) {
			return true
		}
	}
	return false
}

// watch opens a WatchDir stream and waits for its start event.
func watch(t *testing.T, ctx context.Context, req *pb.WatchDirRequest, keepalive string) *recorder {
	t.Helper()
	c := newClient(t, fixedDefaults{user: "root"})
	creq := as("", req)
	if keepalive != "" {
		creq.Header().Set(KeepaliveHeader, keepalive)
	}
	stream, err := c.WatchDir(ctx, creq)
	if err != nil {
		t.Fatal(err)
	}
	if !stream.Receive() || stream.Msg().GetStart() == nil {
		t.Fatalf("first message is not start: %v %v", stream.Msg(), stream.Err())
	}
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for stream.Receive() {
			r.mu.Lock()
			if ev := stream.Msg().GetFilesystem(); ev != nil {
				r.events = append(r.events, ev)
			} else if stream.Msg().GetKeepalive() != nil {
				r.keepalives++
			}
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.err = stream.Err()
		r.mu.Unlock()
	}()
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchDirEvents(t *testing.T) {
	cases := []struct {
		name      string
		recursive bool
		entry     bool
		act       func(t *testing.T, root string)
		want      []struct {
			name string
			typ  pb.EventType
		}
		absent string
	}{
		{name: "create write chmod rename remove", entry: true, act: func(t *testing.T, root string) {
			f := filepath.Join(root, "f.txt")
			must(t, os.WriteFile(f, []byte("x"), 0o644))
			time.Sleep(200 * time.Millisecond) // let the entry be read before it moves
			must(t, os.Chmod(f, 0o600))
			must(t, os.Rename(f, filepath.Join(root, "g.txt")))
			must(t, os.Remove(filepath.Join(root, "g.txt")))
		}, want: []struct {
			name string
			typ  pb.EventType
		}{
			{"f.txt", pb.EventType_EVENT_TYPE_CREATE}, {"f.txt", pb.EventType_EVENT_TYPE_WRITE},
			{"f.txt", pb.EventType_EVENT_TYPE_CHMOD}, {"f.txt", pb.EventType_EVENT_TYPE_RENAME},
			{"g.txt", pb.EventType_EVENT_TYPE_CREATE}, {"g.txt", pb.EventType_EVENT_TYPE_REMOVE},
		}},
		{name: "recursive sees new subdirectories", recursive: true, act: func(t *testing.T, root string) {
			must(t, os.Mkdir(filepath.Join(root, "sub"), 0o755))
			time.Sleep(200 * time.Millisecond)
			must(t, os.WriteFile(filepath.Join(root, "sub", "deep.txt"), []byte("x"), 0o644))
			must(t, os.WriteFile(filepath.Join(root, "old", "o.txt"), []byte("x"), 0o644))
		}, want: []struct {
			name string
			typ  pb.EventType
		}{{"sub", pb.EventType_EVENT_TYPE_CREATE}, {"sub/deep.txt", pb.EventType_EVENT_TYPE_CREATE}, {"old/o.txt", pb.EventType_EVENT_TYPE_CREATE}}},
		{name: "non-recursive ignores nested files", act: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "old", "nested.txt"), []byte("x"), 0o644))
			must(t, os.WriteFile(filepath.Join(root, "top.txt"), []byte("x"), 0o644))
		}, want: []struct {
			name string
			typ  pb.EventType
		}{{"top.txt", pb.EventType_EVENT_TYPE_CREATE}}, absent: "old/nested.txt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			must(t, os.Mkdir(filepath.Join(root, "old"), 0o755))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := watch(t, ctx, &pb.WatchDirRequest{Path: root, Recursive: tc.recursive, IncludeEntry: tc.entry}, "")
			tc.act(t, root)
			for _, w := range tc.want {
				waitFor(t, w.name+" "+w.typ.String(), func() bool { return r.has(w.name, w.typ, false) })
			}
			if tc.entry && !r.has("f.txt", pb.EventType_EVENT_TYPE_CREATE, true) {
				t.Fatal("create event without its entry")
			}
			if tc.absent != "" && r.has(tc.absent, pb.EventType_EVENT_TYPE_CREATE, false) {
				t.Fatalf("unexpected event for %s", tc.absent)
			}
		})
	}
}

func TestWatchDirStreamEnds(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	c := newClient(t, fixedDefaults{user: "root"})
	cases := []struct {
		path string
		want connect.Code
	}{
		{file, connect.CodeInvalidArgument},
		{filepath.Join(root, "missing"), connect.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			stream, err := c.WatchDir(context.Background(), as("", &pb.WatchDirRequest{Path: tc.path}))
			if err == nil {
				for stream.Receive() {
				}
				err = stream.Err()
			}
			if codeOf(err) != tc.want {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("deadline ends with deadline_exceeded after keepalives", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		r := watch(t, ctx, &pb.WatchDirRequest{Path: root}, "1")
		<-r.done
		if codeOf(r.err) != connect.CodeDeadlineExceeded || r.keepalives < 1 {
			t.Fatalf("err %v keepalives %d", r.err, r.keepalives)
		}
	})
}

func TestPolledWatcher(t *testing.T) {
	root := t.TempDir()
	c := newClient(t, fixedDefaults{user: "root"})
	ctx := context.Background()
	created, err := c.CreateWatcher(ctx, as("", &pb.CreateWatcherRequest{Path: root, Recursive: true}))
	if err != nil {
		t.Fatal(err)
	}
	id := created.Msg.GetWatcherId()
	must(t, os.WriteFile(filepath.Join(root, "a"), []byte("x"), 0o644))
	var got []*pb.FilesystemEvent
	waitFor(t, "polled events", func() bool {
		res, err := c.GetWatcherEvents(ctx, as("", &pb.GetWatcherEventsRequest{WatcherId: id}))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.Msg.GetEvents()...)
		return len(got) >= 2
	})
	if got[0].GetName() != "a" || got[0].GetType() != pb.EventType_EVENT_TYPE_CREATE {
		t.Fatalf("events %v", got)
	}
	res, err := c.GetWatcherEvents(ctx, as("", &pb.GetWatcherEventsRequest{WatcherId: id}))
	if err != nil || len(res.Msg.GetEvents()) != 0 {
		t.Fatalf("events are not cleared: %v %v", res, err)
	}
	if _, err := c.RemoveWatcher(ctx, as("", &pb.RemoveWatcherRequest{WatcherId: id})); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() error
	}{
		{"events of a removed watcher", func() error {
			_, err := c.GetWatcherEvents(ctx, as("", &pb.GetWatcherEventsRequest{WatcherId: id}))
			return err
		}},
		{"remove twice", func() error {
			_, err := c.RemoveWatcher(ctx, as("", &pb.RemoveWatcherRequest{WatcherId: id}))
			return err
		}},
		{"watch a missing dir", func() error {
			_, err := c.CreateWatcher(ctx, as("", &pb.CreateWatcherRequest{Path: filepath.Join(root, "nope")}))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); codeOf(err) != connect.CodeNotFound {
				t.Fatalf("err %v, want not_found", err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
