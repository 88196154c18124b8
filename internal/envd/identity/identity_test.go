package identity

import (
	"encoding/base64"
	"errors"
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
