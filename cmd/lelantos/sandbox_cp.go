package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"lelantos.dev/lelantos/internal/client"
)

// remotePath is the ID:/path side of a copy.
type remotePath struct{ id, path string }

// parseRemote reads ID:PATH, where ID is lower-case letters and digits (a
// sandbox ID); anything else is a local path.
func parseRemote(s string) (remotePath, bool) {
	id, p, ok := strings.Cut(s, ":")
	if !ok || id == "" {
		return remotePath{}, false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return remotePath{}, false
		}
	}
	return remotePath{id: id, path: p}, true
}

// sandboxCopy copies one file into or out of a sandbox, streamed; - is
// stdin or stdout.
func sandboxCopy(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("cp", &api)
	user := fs.String("user", "", "the user the file is read or written as (default: the sandbox's default user)")
	pos, err := parseFlags(fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("give SRC and DST, one of them ID:/path (e.g. lelantos sandbox cp ./data.csv ID:/home/user/)")
	}
	src, srcRemote := parseRemote(pos[0])
	dst, dstRemote := parseRemote(pos[1])
	switch {
	case srcRemote == dstRemote:
		return usagef("one of SRC and DST must be ID:/path and the other a local path or -")
	case srcRemote && src.path == "", dstRemote && dst.path == "":
		return usagef("give a path after the sandbox ID, e.g. ID:/home/user/file")
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	if dstRemote {
		d, err := openDaemon(ctx, c, dst.id)
		if err != nil {
			return err
		}
		return upload(ctx, d, pos[0], dst.path, *user)
	}
	d, err := openDaemon(ctx, c, src.id)
	if err != nil {
		return err
	}
	return download(ctx, d, src.path, pos[1], *user)
}

// upload sends the local file src (- for stdin) to dst in the sandbox; a dst
// that is a directory (or ends in /) receives the file under its name.
func upload(ctx context.Context, d *client.Daemon, src, dst, user string) error {
	var r io.Reader = os.Stdin
	size := int64(-1)
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory: cp copies one file", src)
		}
		if fi.Mode().IsRegular() {
			size = fi.Size()
		}
		r = f
	}
	isDir := strings.HasSuffix(dst, "/")
	if !isDir {
		var err error
		if isDir, err = d.IsDir(ctx, dst, user); err != nil {
			return err
		}
	}
	if isDir {
		if src == "-" {
			return fmt.Errorf("%s is a directory: give the file name to write stdin to", dst)
		}
		dst = path.Join(dst, filepath.Base(src))
	}
	bar := newProgress(os.Stderr, "upload "+filepath.Base(src), size)
	err := d.Upload(ctx, dst, user, io.TeeReader(r, bar), size)
	bar.finish(err == nil)
	return err
}

// download writes the sandbox's file src to the local dst (- for stdout); a
// dst that is a directory receives the file under its name. The file is
// written beside dst and renamed at the end, so a failed copy leaves dst as
// it was.
func download(ctx context.Context, d *client.Daemon, src, dst, user string) error {
	body, size, err := d.Download(ctx, src, user)
	if err != nil {
		return err
	}
	defer body.Close()
	bar := newProgress(os.Stderr, "download "+path.Base(src), size)
	if dst == "-" {
		_, err := io.Copy(io.MultiWriter(os.Stdout, bar), body)
		bar.finish(err == nil)
		return err
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, path.Base(src))
	}
	mode := 0o666 &^ umask()
	if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() {
		mode = fi.Mode().Perm() // replacing a file keeps its mode, as cp does
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(io.MultiWriter(tmp, bar), body)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	bar.finish(err == nil)
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// umask is the process's file mode creation mask.
func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}
