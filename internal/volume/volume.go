// Package volume keeps volumes: named directory trees of a fixed size that outlive
// every sandbox. Sandboxes mount a volume read-write (several at once share its
// files), and clients read and write it host-side through the volume content API.
//
// A volume's content is untrusted: sandboxes write it as root. Host-side code touches
// it only through a Tree, which resolves every path inside the volume with
// internal/saferoot, so no link a sandbox planted leads out of it, and which reads
// regular files only.
//
// Two backends keep volumes, both addressed by the volume's ID:
//   - Local keeps each volume of one node as a sparse file system image of the
//     volume's size, loop-mounted under a directory of the node, so that a sandbox
//     writing past the size gets ENOSPC and the image never grows past it on the host.
//   - Dirs keeps each volume as a plain directory under a root, for a file system
//     that enforces sizes itself: a shared one that every node of a cluster mounts
//     at the same path, so that a volume follows its sandboxes to any node.
//
// An object store would back volumes behind the same methods, with Attach making a
// volume's objects available as a directory on the node (a FUSE mount) and Open
// serving the content API from the objects.
package volume

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Errors callers branch on; they arrive wrapped with the operation and path.
var (
	// ErrNotFound: the volume, or the path in it, does not exist (or the path's
	// parent does not, or is not a directory).
	ErrNotFound = errors.New("not found")
	// ErrExists: the volume, or the path in it, exists already (a file written
	// without Force, a directory made again without Force, a file written over a
	// directory).
	ErrExists = errors.New("already exists")
	// ErrNoSpace: the volume is full (ENOSPC or EDQUOT).
	ErrNoSpace = errors.New("the volume is full")
	// ErrInvalid: the request cannot be carried out as given (a bad volume ID, a
	// path with a NUL byte, a listing too large, a symbolic link's mode).
	ErrInvalid = errors.New("invalid request")
)

// DefaultUID and DefaultGID own the top directory of a new volume: the default user
// of the sandboxes (user, 1000), so that it may write there as root may.
const (
	DefaultUID = 1000
	DefaultGID = 1000
)

// MaxListEntries bounds one listing; a deeper or larger one is ErrInvalid.
const MaxListEntries = 10000

// idRE is what a volume ID is made of (the control plane issues UUIDs).
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// checkID refuses an ID that cannot name a volume's directory.
func checkID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("volume ID %q: must be 1-64 of a-z, 0-9 and '-': %w", id, ErrInvalid)
	}
	return nil
}

// Type is the kind of an entry, as the content API names it.
type Type string

// The entry types.
const (
	TypeUnknown   Type = "unknown"
	TypeFile      Type = "file"
	TypeDirectory Type = "directory"
	TypeSymlink   Type = "symlink"
)

// Entry describes one entry of a volume; a symbolic link is described, not followed.
type Entry struct {
	// Name is the entry's last path element ("/" for the volume's top).
	Name string
	// Path is the entry's absolute path inside the volume.
	Path string
	Type Type
	Size int64
	// Mode holds the permission, set-id and sticky bits (mode & 07777).
	Mode     uint32
	UID, GID uint32
	// Atime, Mtime and Ctime are in UTC.
	Atime, Mtime, Ctime time.Time
	// Target is a symbolic link's target, "" for other entries.
	Target string
}

// Attrs are the owner and mode to give an entry; nil fields keep what is there (or,
// for a new entry, take the defaults: owner 0:0, mode 0644 for a file, 0755 for a
// directory).
type Attrs struct {
	UID, GID *uint32
	Mode     *uint32
}

// The modes of new entries when Attrs give none.
const (
	defaultFileMode = 0o644
	defaultDirMode  = 0o755
)
