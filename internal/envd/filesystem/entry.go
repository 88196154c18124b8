package filesystem

import (
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"google.golang.org/protobuf/types/known/timestamppb"

	"lelantos.dev/lelantos/internal/envd/fsmeta"
	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
)

// namer turns uids and gids into names, remembering them for one call.
type namer struct {
	users  map[uint32]string
	groups map[uint32]string
}

func newNamer() *namer {
	return &namer{users: map[uint32]string{}, groups: map[uint32]string{}}
}

// user returns the login name of uid, or the number when it has none.
func (n *namer) user(uid uint32) string {
	if name, ok := n.users[uid]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	n.users[uid] = name
	return name
}

// group returns the name of gid, or the number when it has none.
func (n *namer) group(gid uint32) string {
	if name, ok := n.groups[gid]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(name); err == nil {
		name = g.Name
	}
	n.groups[gid] = name
	return name
}

// entryInfo describes the entry at path (a final symlink is not followed). Like
// describe and walk, it runs with the caller's credentials (inside Do).
func entryInfo(path string, n *namer) (*pb.EntryInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	return describe(path, path, fi, n), nil
}

// describe builds the EntryInfo of fi, reported at shown and read from real.
func describe(shown, real string, fi fs.FileInfo, n *namer) *pb.EntryInfo {
	e := &pb.EntryInfo{
		Name:         filepath.Base(shown),
		Type:         fileType(fi.Mode()),
		Path:         shown,
		Size:         fi.Size(),
		Mode:         uint32(fi.Mode().Perm()),
		Permissions:  lsMode(fi.Mode()),
		ModifiedTime: timestamppb.New(fi.ModTime()),
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Owner, e.Group = n.user(st.Uid), n.group(st.Gid)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(real)
		if err != nil {
			target, _ = os.Readlink(real)
		}
		e.SymlinkTarget = &target
	}
	if md, err := fsmeta.Read(real); err == nil && len(md) > 0 {
		e.Metadata = md
	}
	return e
}

// fileType maps a mode to the wire's file type.
func fileType(m fs.FileMode) pb.FileType {
	switch {
	case m&fs.ModeSymlink != 0:
		return pb.FileType_FILE_TYPE_SYMLINK
	case m.IsDir():
		return pb.FileType_FILE_TYPE_DIRECTORY
	case m.IsRegular():
		return pb.FileType_FILE_TYPE_FILE
	}
	return pb.FileType_FILE_TYPE_UNSPECIFIED
}

// lsMode renders a mode the way `ls -l` does, e.g. "-rw-r--r--" or "drwxrwxrwt".
func lsMode(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	special := func(idx int, set bool, on, off byte) {
		if !set {
			return
		}
		if b[idx] == 'x' {
			b[idx] = on
		} else {
			b[idx] = off
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}
