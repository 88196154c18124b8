// Package fsmeta stores a file's user metadata (the X-Metadata-* headers of an
// upload, EntryInfo.metadata on the wire) as user.* extended attributes.
package fsmeta

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// HeaderPrefix starts every metadata header of an upload.
const HeaderPrefix = "X-Metadata-"

// xattrPrefix is the namespace metadata keys live in.
const xattrPrefix = "user."

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

// Read returns the user.* attributes of path (not following a final symlink)
// with the prefix removed, or nil when it has none or the filesystem keeps none.
func Read(path string) (map[string]string, error) { return read(pathAttrs(path)) }

// ReadFile is Read on an open file.
func ReadFile(f *os.File) (map[string]string, error) { return read(fileAttrs{f}) }

// Replace makes md the user metadata of path (not following a final symlink):
// user.* attributes not in md are removed and the given ones set.
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
