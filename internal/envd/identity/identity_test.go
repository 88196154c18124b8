package identity

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestUsernameFromAuthorization(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		header, want string
		err          bool
	}{
		{"", "", false},
		{"Basic " + enc("user:"), "user", false},
		{"basic " + enc("root:"), "root", false},
		{"Basic " + enc("alice"), "alice", false},
		{"Basic " + enc(":"), "", false},
		{"Bearer abc", "", true},
		{"Basic !!!", "", true},
		{"Basic", "", true},
	}
	for _, tc := range cases {
		got, err := UsernameFromAuthorization(tc.header)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%q: got %q, %v", tc.header, got, err)
		}
	}
}

func TestAbs(t *testing.T) {
	u := User{Name: "user", Home: "/home/user"}
	cases := []struct {
		path, workdir, want string
		err                 bool
	}{
		{"", "", "/home/user", false},
		{"", "/work", "/work", false},
		{"a/b", "/work", "/home/user/a/b", false},
		{"~", "", "/home/user", false},
		{"~/x/../y", "", "/home/user/y", false},
		{"~root/x", "", "", true},
		{"/etc//passwd/", "", "/etc/passwd", false},
		{"../../..", "", "/", false},
		{"a\x00b", "", "", true},
	}
	for _, tc := range cases {
		got, err := u.Abs(tc.path, tc.workdir)
		if got != tc.want || (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrBadPath)) {
			t.Errorf("Abs(%q, %q) = %q, %v", tc.path, tc.workdir, got, err)
		}
	}
}

func TestResolve(t *testing.T) {
	cases := []struct {
		name, def, want string
		err             bool
	}{
		{"root", "", "root", false},
		{"", "nobody", "nobody", false},
		{"nobody", "root", "nobody", false},
		{"no-such-user-xyz", "", "", true},
		{"", "no-such-user-xyz", "", true},
	}
	for _, tc := range cases {
		u, err := Resolve(tc.name, tc.def)
		if (err != nil) != tc.err || (!tc.err && u.Name != tc.want) {
			t.Errorf("Resolve(%q, %q) = %+v, %v", tc.name, tc.def, u, err)
		}
		if tc.err && !errors.Is(err, ErrUnknownUser) {
			t.Errorf("error %v is not ErrUnknownUser", err)
		}
	}
	fallback, err := Resolve("", "")
	if _, lookErr := Lookup(FallbackUser); err != nil || (lookErr != nil && fallback.Name != "root") || (lookErr == nil && fallback.Name != FallbackUser) {
		t.Fatalf("fallback %+v %v", fallback, err)
	}
	nobody, _ := Lookup("nobody")
	if nobody.UID != 65534 || nobody.Home != "/nonexistent" || len(nobody.Groups) == 0 || nobody.Groups[0] != nobody.GID {
		t.Fatalf("nobody %+v", nobody)
	}
}

func TestAllows(t *testing.T) {
	u := User{Name: "u", UID: 1000, GID: 1000, Groups: []uint32{1000, 27}}
	cases := []struct {
		name     string
		uid, gid uint32
		mode     uint32
		want     Perm
		ok       bool
	}{
		{"owner rw", 1000, 0, 0o600, Read | Write, true},
		{"owner bits win over other", 1000, 0, 0o077, Read, false},
		{"group", 0, 27, 0o070, Read | Write | Exec, true},
		{"supplementary group only read", 0, 27, 0o040, Write, false},
		{"other", 0, 0, 0o001, Exec, true},
		{"other denied", 0, 0, 0o750, Read, false},
	}
	for _, tc := range cases {
		st := &syscall.Stat_t{Uid: tc.uid, Gid: tc.gid, Mode: tc.mode}
		if got := u.Allows(st, tc.want); got != tc.ok {
			t.Errorf("%s: %v", tc.name, got)
		}
		if !(User{}).Allows(st, tc.want) {
			t.Errorf("%s: root is refused", tc.name)
		}
	}
}

func TestChecksAndMkdirAll(t *testing.T) {
	root := t.TempDir()
	must(t, os.Chmod(root, 0o755))
	for d := filepath.Dir(root); d != "/"; d = filepath.Dir(d) {
		must(t, os.Chmod(d, 0o755))
	}
	nobody, err := Lookup("nobody")
	must(t, err)
	private := filepath.Join(root, "private")
	must(t, os.Mkdir(private, 0o700))
	open := filepath.Join(root, "open")
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(open, 0o777))
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"traverse private", nobody.CheckTraverse(filepath.Join(private, "x")), fs.ErrPermission},
		{"symlink into private", func() error {
			must(t, os.Symlink(private, filepath.Join(open, "to-private")))
			return nobody.Check(filepath.Join(open, "to-private", "x"), Read)
		}(), fs.ErrPermission},
		{"missing in open", nobody.Check(filepath.Join(open, "x", "y"), Read), fs.ErrNotExist},
		{"read inside private", nobody.Check(filepath.Join(private, "x"), Read), fs.ErrPermission},
		{"write root dir", nobody.Check(root, Write), fs.ErrPermission},
		{"mkdir under root dir", nobody.MkdirAll(filepath.Join(root, "a", "b")), fs.ErrPermission},
		{"mkdir under open dir", nobody.MkdirAll(filepath.Join(open, "a", "b")), nil},
		{"mkdir through a file", nobody.MkdirAll(filepath.Join(open, "a", "b", "f", "g")), nil},
		{"entry missing", nobody.CheckEntry(filepath.Join(open, "nope")), fs.ErrNotExist},
		{"unlink in root dir", nobody.CheckUnlink(filepath.Join(root, "open")), fs.ErrPermission},
	}
	for _, tc := range cases {
		if tc.want == nil && tc.err != nil || tc.want != nil && !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	var st syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(open, "a", "b"), &st))
	if st.Uid != nobody.UID || st.Gid != nobody.GID {
		t.Fatalf("created dir owned by %d:%d", st.Uid, st.Gid)
	}
	must(t, os.WriteFile(filepath.Join(open, "file"), nil, 0o644))
	if err := nobody.MkdirAll(filepath.Join(open, "file", "sub")); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("mkdir under a file: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
