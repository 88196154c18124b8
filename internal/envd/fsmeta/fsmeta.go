// Package fsmeta stores a file's user metadata (the X-Metadata-* headers of an
// upload, EntryInfo.metadata on the wire) as user.* extended attributes.
package fsmeta

import (
	"errors"
	"fmt"
	"net/http"
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
func Read(path string) (map[string]string, error) {
	names, err := list(path)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var md map[string]string
	for _, name := range names {
		if !strings.HasPrefix(name, xattrPrefix) {
			continue
		}
		val, err := get(path, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, fmt.Errorf("read metadata %s of %s: %w", name, path, err)
		}
		if md == nil {
			md = map[string]string{}
		}
		md[strings.TrimPrefix(name, xattrPrefix)] = string(val)
	}
	return md, nil
}

// Replace makes md the user metadata of path: user.* attributes not in md are
// removed and the given ones set.
func Replace(path string, md map[string]string) error {
	old, err := list(path)
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
		if err := unix.Lremovexattr(path, name); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("remove metadata %s of %s: %w", name, path, err)
		}
	}
	for k, v := range md {
		if err := unix.Lsetxattr(path, xattrPrefix+k, []byte(v), 0); err != nil {
			return fmt.Errorf("set metadata %q on %s: %w", k, path, err)
		}
	}
	return nil
}

// list returns the attribute names of path; an unsupported filesystem yields none.
func list(path string) ([]string, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(path, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			size *= 4
			if size > 1<<20 {
				return nil, fmt.Errorf("list metadata of %s: %w", path, err)
			}
			continue
		case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("list metadata of %s: %w", path, err)
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
func get(path, name string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, name, buf)
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
