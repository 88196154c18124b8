// Package fsmeta stores a file's user metadata (the X-Metadata-* headers of an
// upload, EntryInfo.metadata on the wire) as extended attributes in E2B's
// namespace, user.e2b.<key>: other user.* attributes of a file are neither
// reported nor touched.
package fsmeta

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// HeaderPrefix starts every metadata header of an upload.
const HeaderPrefix = "X-Metadata-"

// xattrPrefix is the namespace metadata keys live in: "user." is the one the
// kernel lets unprivileged users write, "e2b." keeps the keys apart from what
// other tools store there (as E2B's daemon does).
const xattrPrefix = "user.e2b."

// Limits of a file's metadata. The kernel takes attribute names up to 255
// bytes; ext4 and most filesystems keep all of a file's attributes in one 4 KiB
// block, so a larger set could not be stored.
const (
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 255 - len(xattrPrefix)
	// MaxTotalLen bounds the sum, over all keys, of the stored name and value.
	MaxTotalLen = 4096
)

// ErrInvalid marks metadata that cannot be stored (a bad key or value, or too
// much of it): the client's mistake.
var ErrInvalid = errors.New("invalid metadata")

// Validate checks md before anything is written: keys non-empty and at most
// MaxKeyLen bytes, keys and values printable US-ASCII (what the clients send in
// headers), and all of it within MaxTotalLen. Its errors wrap ErrInvalid and
// name the offending header.
func Validate(md map[string]string) error {
	total := 0
	for k, v := range md {
		switch {
		case k == "":
			return fmt.Errorf("%w: header %s with an empty key", ErrInvalid, HeaderPrefix)
		case len(k) > MaxKeyLen:
			return fmt.Errorf("%w: header %s%.32s...: the key is longer than %d bytes", ErrInvalid, HeaderPrefix, k, MaxKeyLen)
		case !printable(k):
			return fmt.Errorf("%w: header %s%q: the key is not printable ASCII", ErrInvalid, HeaderPrefix, k)
		case !printable(v):
			return fmt.Errorf("%w: header %s%s: the value is not printable ASCII", ErrInvalid, HeaderPrefix, k)
		}
		total += len(xattrPrefix) + len(k) + len(v)
	}
	if total > MaxTotalLen {
		return fmt.Errorf("%w: the %s* headers hold %d bytes of metadata, more than the %d a file keeps", ErrInvalid, HeaderPrefix, total, MaxTotalLen)
	}
	return nil
}

// printable reports whether s is made of bytes 0x20..0x7e only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// FromHeaders collects metadata from X-Metadata-<key> headers: keys are
// lower-cased (HTTP header names are case-insensitive), the first value wins and
// empty keys are dropped. It returns nil when there is none.
func FromHeaders(h http.Header) map[string]string {
	var md map[string]string
	for name, values := range h {
		if len(name) <= len(HeaderPrefix) || !strings.EqualFold(name[:len(HeaderPrefix)], HeaderPrefix) || len(values) == 0 {
			continue
		}
		if md == nil {
			md = map[string]string{}
		}
		md[strings.ToLower(name[len(HeaderPrefix):])] = values[0]
	}
	return md
}

// Read returns the user.e2b.* attributes of path (not following a final
// symlink) with the prefix removed, or nil when it has none or the filesystem
// keeps none. Attributes whose key or value is not valid UTF-8 (set inside the
// sandbox by other means) are left out: the wire carries strings.
func Read(path string) (map[string]string, error) { return read(pathAttrs(path)) }

// ReadFile is Read on an open file.
func ReadFile(f *os.File) (map[string]string, error) { return read(fileAttrs{f}) }

// Replace makes md the user metadata of path (not following a final symlink):
// user.e2b.* attributes not in md are removed and the given ones set, so an
// empty md clears the metadata.
func Replace(path string, md map[string]string) error { return replace(pathAttrs(path), md) }

// ReplaceFile is Replace on an open file.
func ReplaceFile(f *os.File, md map[string]string) error { return replace(fileAttrs{f}, md) }

// attrs reaches the extended attributes of one file.
type attrs interface {
	name() string
	list(buf []byte) (int, error)
	get(attr string, buf []byte) (int, error)
	set(attr string, val []byte) error
	remove(attr string) error
}

// pathAttrs are the attributes of the entry at a path, a final symlink itself.
type pathAttrs string

func (p pathAttrs) name() string                          { return string(p) }
func (p pathAttrs) list(buf []byte) (int, error)          { return unix.Llistxattr(string(p), buf) }
func (p pathAttrs) get(a string, buf []byte) (int, error) { return unix.Lgetxattr(string(p), a, buf) }
func (p pathAttrs) set(a string, val []byte) error        { return unix.Lsetxattr(string(p), a, val, 0) }
func (p pathAttrs) remove(a string) error                 { return unix.Lremovexattr(string(p), a) }

// fileAttrs are the attributes of an open file.
type fileAttrs struct{ f *os.File }

func (f fileAttrs) name() string { return f.f.Name() }

func (f fileAttrs) list(buf []byte) (n int, err error) {
	return n, f.control(func(fd int) error { n, err = unix.Flistxattr(fd, buf); return err })
}

func (f fileAttrs) get(a string, buf []byte) (n int, err error) {
	return n, f.control(func(fd int) error { n, err = unix.Fgetxattr(fd, a, buf); return err })
}

func (f fileAttrs) set(a string, val []byte) error {
	return f.control(func(fd int) error { return unix.Fsetxattr(fd, a, val, 0) })
}

func (f fileAttrs) remove(a string) error {
	return f.control(func(fd int) error { return unix.Fremovexattr(fd, a) })
}

// control runs op on the file's descriptor.
func (f fileAttrs) control(op func(fd int) error) error {
	rc, err := f.f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = op(int(fd)) }); err != nil {
		return err
	}
	return opErr
}

// read implements Read and ReadFile.
func read(at attrs) (map[string]string, error) {
	names, err := list(at)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var md map[string]string
	for _, name := range names {
		if !strings.HasPrefix(name, xattrPrefix) {
			continue
		}
		val, err := get(at, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, fmt.Errorf("read metadata %s of %s: %w", name, at.name(), err)
		}
		if !utf8.ValidString(name) || !utf8.Valid(val) {
			continue
		}
		if md == nil {
			md = map[string]string{}
		}
		md[strings.TrimPrefix(name, xattrPrefix)] = string(val)
	}
	return md, nil
}

// replace implements Replace and ReplaceFile.
func replace(at attrs, md map[string]string) error {
	old, err := list(at)
	if err != nil {
		return err
	}
	for _, name := range old {
		if !strings.HasPrefix(name, xattrPrefix) {
			continue
		}
		if _, keep := md[strings.TrimPrefix(name, xattrPrefix)]; keep {
			continue
		}
		if err := at.remove(name); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("remove metadata %s of %s: %w", name, at.name(), err)
		}
	}
	for k, v := range md {
		if err := at.set(xattrPrefix+k, []byte(v)); err != nil {
			return fmt.Errorf("set metadata %q on %s: %w", k, at.name(), err)
		}
	}
	return nil
}

// list returns the attribute names of a file; an unsupported filesystem yields none.
func list(at attrs) ([]string, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := at.list(buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			size *= 4
			if size > 1<<20 {
				return nil, fmt.Errorf("list metadata of %s: %w", at.name(), err)
			}
			continue
		case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("list metadata of %s: %w", at.name(), err)
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

// get returns one attribute's value.
func get(at attrs, name string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := at.get(name, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			size *= 4
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
