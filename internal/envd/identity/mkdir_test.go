package identity

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMkdirAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: acting as another user takes CAP_SETUID")
	}
	dir := t.TempDir()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755))
	}
	private := filepath.Join(dir, "private")
	must(t, os.Mkdir(private, 0o700))
	open := filepath.Join(dir, "open")
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(open, 0o777))
	must(t, os.WriteFile(filepath.Join(open, "file"), nil, 0o644))
	must(t, os.Symlink(private, filepath.Join(open, "to-private")))
	must(t, os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(open, "dangling")))
	nobody := User{Name: "nobody", UID: 65534, GID: 65534, Groups: []uint32{65534}}
	cases := []struct {
		name string
		dir  string
		want error
	}{
		{"parents in an open dir", filepath.Join(open, "a", "b", "c"), nil},
		{"an existing dir", open, nil},
		{"in a root dir", filepath.Join(dir, "new"), syscall.EACCES},
		{"inside a private dir", filepath.Join(private, "a"), syscall.EACCES},
		{"through a symlink to a private dir", filepath.Join(open, "to-private", "a"), syscall.EACCES},
		{"under a file", filepath.Join(open, "file", "a"), syscall.ENOTDIR},
		{"a file", filepath.Join(open, "file"), syscall.ENOTDIR},
		{"a dangling symlink", filepath.Join(open, "dangling", "a"), syscall.ENOENT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := nobody.Do(func() error { return MkdirAll(tc.dir) })
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("MkdirAll: %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				var st syscall.Stat_t
				must(t, syscall.Stat(tc.dir, &st))
				if tc.dir != open && (st.Uid != 65534 || st.Gid != 65534) {
					t.Fatalf("made dir owned by %d:%d", st.Uid, st.Gid)
				}
			}
		})
	}
}
