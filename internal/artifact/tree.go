// Package artifact moves the trees nodes need, templates' root file systems,
// by content address. A tree is named by the SHA-256 of its canonical tar
// stream (WriteTree); the control plane's Index names its trees and serves
// them by name; a node's Cache fetches a tree it does not hold, checks the
// stream against the name as it unpacks it, and keeps it under that name, so
// the agent RPC carries names, never paths of another machine.
package artifact

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInvalid: a name that is not a tree's content address.
var ErrInvalid = errors.New("invalid artifact name")

// ErrNotFound: no tree of that name is known.
var ErrNotFound = errors.New("artifact not found")

// namePattern is a tree's name: "sha256:" and 64 lower-case hex digits.
var namePattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// CheckName reports whether name is a tree's content address.
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w: %q is not sha256:<64 hex digits>", ErrInvalid, name)
	}
	return nil
}

// Name computes the content address of the tree at dir.
func Name(ctx context.Context, dir string) (string, error) {
	h := sha256.New()
	if err := WriteTree(ctx, h, dir); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// WriteTree writes the canonical tar stream of the tree at dir to w: every
// entry below dir in lexical order of its path, directories, regular files,
// symbolic links, FIFOs and hard links (a second path of a file is a link to
// its first), each with its mode, owner, modification time (whole seconds)
// and extended attributes, and nothing else that varies between two writes
// of one tree. Device nodes and sockets are left out: no tree has them.
func WriteTree(ctx context.Context, w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	seen := map[[2]uint64]string{} // (device, inode) of files with several links: first path
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		return writeEntry(tw, path, filepath.ToSlash(rel), seen)
	})
	if err != nil {
		return fmt.Errorf("write tree %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write tree %s: %w", dir, err)
	}
	return nil
}

// writeEntry writes the entry at path, named rel in the stream.
func writeEntry(tw *tar.Writer, path, rel string, seen map[[2]uint64]string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	hdr := &tar.Header{Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0), Format: tar.FormatPAX}
	var content *os.File
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
	case unix.S_IFLNK:
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFREG:
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := seen[key]; ok && st.Nlink > 1 {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			break
		}
		if st.Nlink > 1 {
			seen[key] = rel
		}
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		hdr.Typeflag, hdr.Size, content = tar.TypeReg, st.Size, f
	default:
		return nil // devices and sockets
	}
	xattrs, err := readXattrs(path)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(xattrs) {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = xattrs[k]
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if content != nil {
		if n, err := io.Copy(tw, io.LimitReader(content, hdr.Size)); err != nil || n != hdr.Size {
			return fmt.Errorf("%s: %d of %d bytes: %w (the tree changed while it was read?)", rel, n, hdr.Size, err)
		}
	}
	return nil
}

// readXattrs returns the extended attributes of path (not following a link)
// that a tree carries: not those of overlay file systems.
func readXattrs(path string) (map[string]string, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(path, buf); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if k == "" || strings.HasPrefix(k, "trusted.overlay.") {
			continue
		}
		n, err := unix.Lgetxattr(path, k, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(path, k, v); err != nil {
			return nil, err
		}
		out[k] = string(v[:n])
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Checker hashes a stream as it is read and tells whether it is the one a
// name asked for.
type Checker struct {
	name string
	h    hash.Hash
}

// NewChecker returns a Checker of a stream named name.
func NewChecker(name string) (*Checker, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	return &Checker{name: name, h: sha256.New()}, nil
}

// Reader returns r, hashed as it is read.
func (c *Checker) Reader(r io.Reader) io.Reader { return io.TeeReader(r, c.h) }

// Check reports a stream read through Reader that is not the one named.
func (c *Checker) Check() error {
	if got := "sha256:" + hex.EncodeToString(c.h.Sum(nil)); got != c.name {
		return fmt.Errorf("%s: %w: the stream is %s", c.name, errMismatch, got)
	}
	return nil
}
