// Package filesystem implements the daemon's filesystem.Filesystem Connect
// service: stat, list (to a depth), make, move and remove paths, and watch
// directories with inotify, streamed or polled. Every file operation runs with
// the calling user's credentials (identity.User.Do), so the kernel decides what
// the user may do when it is done.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/errmap"
	"lelantos.dev/lelantos/internal/envd/identity"
	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
	"lelantos.dev/lelantos/internal/gen/envd/filesystem/filesystemconnect"
)

// Defaults is what the service needs from the sandbox's settings.
type Defaults interface {
	// DefaultUser returns the user calls run as by default ("" for the fallback).
	DefaultUser() string
	// DefaultWorkdir returns the default working directory ("" for the home).
	DefaultWorkdir() string
}

// Service implements filesystemconnect.FilesystemHandler.
type Service struct {
	defaults Defaults
	watchers *registry
	log      *slog.Logger
}

var _ filesystemconnect.FilesystemHandler = (*Service)(nil)

// NewService returns a Service using defaults for users and relative paths.
func NewService(defaults Defaults, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{defaults: defaults, watchers: newRegistry(), log: log}
}

// Handler returns the route prefix and HTTP handler of the service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return filesystemconnect.NewFilesystemHandler(s, opts...)
}

// Close stops every polled watcher.
func (s *Service) Close() { s.watchers.closeAll() }

// resolve returns the calling user and p made absolute for them.
func (s *Service) resolve(h http.Header, p string) (identity.User, string, error) {
	name, err := identity.UsernameFromAuthorization(h.Get("Authorization"))
	if err != nil {
		return identity.User{}, "", connect.NewError(connect.CodeUnauthenticated, err)
	}
	u, err := identity.Resolve(name, s.defaults.DefaultUser())
	if err != nil {
		return identity.User{}, "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("resolve user: %w", err))
	}
	abs, err := u.Abs(p, s.defaults.DefaultWorkdir())
	if err != nil {
		return identity.User{}, "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	return u, abs, nil
}

// Stat describes one path (a final symlink is reported, not followed).
func (s *Service) Stat(_ context.Context, req *connect.Request[pb.StatRequest]) (*connect.Response[pb.StatResponse], error) {
	u, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	var e *pb.EntryInfo
	if err := u.Do(func() error {
		e, err = entryInfo(path, newNamer())
		return err
	}); err != nil {
		return nil, errmap.Connect("stat "+path, err)
	}
	return connect.NewResponse(&pb.StatResponse{Entry: e}), nil
}

// MakeDir creates a directory with its parents, owned by the user.
func (s *Service) MakeDir(_ context.Context, req *connect.Request[pb.MakeDirRequest]) (*connect.Response[pb.MakeDirResponse], error) {
	u, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	var e *pb.EntryInfo
	err = u.Do(func() error {
		if fi, err := os.Lstat(path); err == nil {
			what := "directory"
			if !fi.IsDir() {
				what = "path (not a directory)"
			}
			return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s already exists: %s", what, path))
		}
		if err := identity.MkdirAll(path); err != nil {
			return err
		}
		e, err = entryInfo(path, newNamer())
		return err
	})
	if err != nil {
		return nil, errmap.Connect("make directory "+path, err)
	}
	return connect.NewResponse(&pb.MakeDirResponse{Entry: e}), nil
}

// Move renames source to destination, creating the destination's parents.
func (s *Service) Move(_ context.Context, req *connect.Request[pb.MoveRequest]) (*connect.Response[pb.MoveResponse], error) {
	u, src, err := s.resolve(req.Header(), req.Msg.GetSource())
	if err != nil {
		return nil, err
	}
	_, dst, err := s.resolve(req.Header(), req.Msg.GetDestination())
	if err != nil {
		return nil, err
	}
	var e *pb.EntryInfo
	err = u.Do(func() error {
		if _, err := os.Lstat(src); err != nil {
			return err
		}
		if err := identity.MkdirAll(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
		e, err = entryInfo(dst, newNamer())
		return err
	})
	if err != nil {
		return nil, errmap.Connect(fmt.Sprintf("move %s to %s", src, dst), err)
	}
	return connect.NewResponse(&pb.MoveResponse{Entry: e}), nil
}

// ListDir lists a directory to a depth (0 means 1), entries reported under the
// requested path even when it is a symlink to the directory.
func (s *Service) ListDir(_ context.Context, req *connect.Request[pb.ListDirRequest]) (*connect.Response[pb.ListDirResponse], error) {
	u, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	depth := int(req.Msg.GetDepth())
	if depth < 1 {
		depth = 1
	}
	op := "list " + path
	var entries []*pb.EntryInfo
	err = u.Do(func() error {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(real); err != nil {
			return err
		} else if !fi.IsDir() {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: path is not a directory", op))
		}
		return walk(path, real, depth, newNamer(), &entries)
	})
	if err != nil {
		return nil, errmap.Connect(op, err)
	}
	return connect.NewResponse(&pb.ListDirResponse{Entries: entries}), nil
}

// walk appends the entries of real (shown as shown) and, below depth, of its
// subdirectories the caller may read. Symlinked directories are not entered.
func walk(shown, real string, depth int, n *namer, out *[]*pb.EntryInfo) error {
	dirents, err := os.ReadDir(real)
	if err != nil {
		return err
	}
	for _, d := range dirents {
		fi, err := d.Info()
		if err != nil {
			continue
		}
		childShown, childReal := filepath.Join(shown, d.Name()), filepath.Join(real, d.Name())
		*out = append(*out, describe(childShown, childReal, fi, n))
		if depth > 1 && fi.IsDir() {
			_ = walk(childShown, childReal, depth-1, n, out)
		}
	}
	return nil
}

// Remove deletes a file, a symlink or a directory tree. A path that does not
// exist is removed already: that succeeds, as with E2B's daemon (a path the
// user may not look up is still permission_denied).
func (s *Service) Remove(_ context.Context, req *connect.Request[pb.RemoveRequest]) (*connect.Response[pb.RemoveResponse], error) {
	u, path, err := s.resolve(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	if path == "/" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("refusing to remove /"))
	}
	err = u.Do(func() error { return os.RemoveAll(path) })
	if err != nil {
		return nil, errmap.Connect("remove "+path, err)
	}
	return connect.NewResponse(&pb.RemoveResponse{}), nil
}
