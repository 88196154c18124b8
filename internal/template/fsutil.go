package template

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/saferoot"
)

// Which trees are trusted. The builder's own records (build.json, log.jsonl,
// layer.json, template.json) and the directories it makes for them are written
// only by the builder and read with plain os calls. Everything else it touches is
// untrusted and read and written only through internal/saferoot: build contexts
// (from API users), image layouts and archives, every layer's tree (image content,
// files a RUN step made), and a RUN step's upper directory. linkTree's cp is the one
// exception: it copies a tree no code runs in any more, never following its links.

// owner is a numeric file owner.
type owner = saferoot.Owner

// linkTree makes dst (absent) a copy of the tree src whose files are hard links to
// src's: directories are new, file contents and inodes shared. Nothing may write
// into a shared file afterwards; the builder only ever replaces files. Across file
// systems, or when a file has as many links as the file system allows, it copies
// instead (with reflinks where the file system has them). cp -a copies links as
// links and follows none.
func linkTree(ctx context.Context, src, dst string) error {
	if sameDevice(src, filepath.Dir(dst)) {
		err := cp(ctx, "-al", src, dst)
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return cp(ctx, "-a --reflink=auto", src, dst)
}

func cp(ctx context.Context, flags, src, dst string) error {
	args := append(strings.Fields(flags), "--", src, dst)
	out, err := exec.CommandContext(ctx, "cp", args...).CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dst)
		return fmt.Errorf("copy tree %s: cp %s: %v: %s", src, flags, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// openTree opens a layer's tree (a trusted host path, untrusted content) with links
// resolved as inside it.
func openTree(dir string) (*saferoot.Root, error) {
	r, err := saferoot.Open(dir, saferoot.InRoot)
	if err != nil {
		return nil, fmt.Errorf("open tree: %w", err)
	}
	return r, nil
}

// isDirIn reports whether p is a directory in the tree.
func isDirIn(tree *saferoot.Root, p string) bool {
	fi, err := tree.Stat(p)
	return err == nil && fi.IsDir()
}

// isFileIn reports whether p is a regular file in the tree.
func isFileIn(tree *saferoot.Root, p string) bool {
	fi, err := tree.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// statOf is the stat buffer of an entry saferoot described.
func statOf(fi fs.FileInfo) *syscall.Stat_t { return fi.Sys().(*syscall.Stat_t) }
