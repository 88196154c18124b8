package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/fsnotify/fsnotify"

	"lelantos.dev/lelantos/internal/envd/errmap"
	"lelantos.dev/lelantos/internal/envd/identity"
	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
)

// KeepaliveHeader is the request header carrying the keepalive interval in seconds.
const KeepaliveHeader = "Keepalive-Ping-Interval"

// networkFS lists statfs magic numbers of network filesystems, which a watch
// refuses unless the request allows network mounts.
var networkFS = map[uint32]string{
	0x6969:     "nfs",
	0x517B:     "smb",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x65735546: "fuse",
}

// watcher turns inotify events under a root into wire events.
type watcher struct {
	fsw          *fsnotify.Watcher
	root         string
	recursive    bool
	includeEntry bool
	// user is who watches: new subdirectories are added and entries described
	// with their credentials.
	user identity.User
}

// newWatcher starts watching root with u's credentials (inotify asks for read
// permission on every directory it watches).
func newWatcher(u identity.User, root string, recursive, includeEntry, allowNetwork bool) (*watcher, error) {
	op := "watch " + root
	var w *watcher
	err := u.Do(func() error {
		real, err := filepath.EvalSymlinks(root)
		if err != nil {
			return err
		}
		fi, err := os.Stat(real)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: path is not a directory", op))
		}
		if !allowNetwork {
			var sfs syscall.Statfs_t
			if err := syscall.Statfs(real, &sfs); err == nil {
				if name, ok := networkFS[uint32(sfs.Type)]; ok {
					return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: path is on a network mount (%s); allow network mounts to watch it", op, name))
				}
			}
		}
		fsw, err := fsnotify.NewWatcher()
		if err != nil {
			return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%s: %w", op, err))
		}
		w = &watcher{fsw: fsw, root: root, recursive: recursive, includeEntry: includeEntry, user: u}
		if err := w.add(root); err != nil {
			_ = fsw.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, errmap.Connect(op, err)
	}
	return w, nil
}

// add watches dir and, when recursive, every subdirectory the caller may
// watch; it must run with the watcher's user's credentials.
func (w *watcher) add(dir string) error {
	if err := w.fsw.Add(dir); err != nil {
		return err
	}
	if !w.recursive {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir || !d.IsDir() {
			return nil
		}
		if err := w.fsw.Add(p); err != nil {
			return filepath.SkipDir
		}
		return nil
	})
}

// close stops watching.
func (w *watcher) close() { _ = w.fsw.Close() }

// run delivers events to emit until ctx ends or the watcher fails.
func (w *watcher) run(ctx context.Context, emit func(*pb.FilesystemEvent) error, every time.Duration, alive func() error) error {
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			if err := alive(); err != nil {
				return err
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				continue
			}
			return connect.NewError(connect.CodeInternal, fmt.Errorf("watch %s: %w", w.root, err))
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return nil
			}
			for _, out := range w.convert(ev) {
				if err := emit(out); err != nil {
					return err
				}
			}
		}
	}
}

// convert maps one inotify event to wire events (one per operation it carries)
// and starts watching directories created under a recursive watch.
func (w *watcher) convert(ev fsnotify.Event) []*pb.FilesystemEvent {
	name, err := filepath.Rel(w.root, ev.Name)
	if err != nil {
		name = ev.Name
	}
	if w.recursive && ev.Has(fsnotify.Create) {
		_ = w.user.Do(func() error {
			if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
				_ = w.add(ev.Name)
			}
			return nil
		})
	}
	ops := []struct {
		op fsnotify.Op
		t  pb.EventType
	}{
		{fsnotify.Create, pb.EventType_EVENT_TYPE_CREATE},
		{fsnotify.Write, pb.EventType_EVENT_TYPE_WRITE},
		{fsnotify.Remove, pb.EventType_EVENT_TYPE_REMOVE},
		{fsnotify.Rename, pb.EventType_EVENT_TYPE_RENAME},
		{fsnotify.Chmod, pb.EventType_EVENT_TYPE_CHMOD},
	}
	var out []*pb.FilesystemEvent
	for _, o := range ops {
		if !ev.Has(o.op) {
			continue
		}
		fe := &pb.FilesystemEvent{Name: name, Type: o.t}
		if w.includeEntry && o.t != pb.EventType_EVENT_TYPE_REMOVE && o.t != pb.EventType_EVENT_TYPE_RENAME {
			_ = w.user.Do(func() error {
				e, err := entryInfo(ev.Name, newNamer())
				fe.Entry = e
				return err
			})
		}
		out = append(out, fe)
	}
	return out
}

// keepalive reads the keepalive interval a client asked for (0: none).
func keepalive(h http.Header) time.Duration {
	secs, err := strconv.Atoi(h.Get(KeepaliveHeader))
	if err != nil || secs <= 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// WatchDir streams events under a directory: start{} first, then events and
// keepalives until the client leaves or the request's deadline passes.
func (s *Service) WatchDir(ctx context.Context, req *connect.Request[pb.WatchDirRequest], stream *connect.ServerStream[pb.WatchDirResponse]) error {
	u, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return err
	}
	w, err := newWatcher(u, path, req.Msg.GetRecursive(), req.Msg.GetIncludeEntry(), req.Msg.GetAllowNetworkMounts())
	if err != nil {
		return err
	}
	defer w.close()
	if err := stream.Send(&pb.WatchDirResponse{Event: &pb.WatchDirResponse_Start{Start: &pb.WatchDirResponse_StartEvent{}}}); err != nil {
		return err
	}
	emit := func(ev *pb.FilesystemEvent) error {
		return stream.Send(&pb.WatchDirResponse{Event: &pb.WatchDirResponse_Filesystem{Filesystem: ev}})
	}
	alive := func() error {
		return stream.Send(&pb.WatchDirResponse{Event: &pb.WatchDirResponse_Keepalive{Keepalive: &pb.WatchDirResponse_KeepAlive{}}})
	}
	err = w.run(ctx, emit, keepalive(req.Header()), alive)
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("watch %s: the request's deadline passed", path))
	}
	return err
}
