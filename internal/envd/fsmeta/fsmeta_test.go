package fsmeta

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFromHeaders(t *testing.T) {
	cases := []struct {
		headers map[string][]string
		want    string
	}{
		{map[string][]string{"X-Access-Token": {"a"}}, "map[]"},
		{map[string][]string{"X-Metadata-Author": {"me", "second"}, "X-Metadata-Purpose": {"test"}}, "map[author:me purpose:test]"},
		{map[string][]string{"X-Metadata-": {"empty key"}}, "map[]"},
	}
	for _, tc := range cases {
		got := FromHeaders(http.Header(tc.headers))
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%v: got %v", tc.headers, got)
		}
	}
}

func TestReplaceAndRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ways := []struct {
		name    string
		replace func(map[string]string) error
		read    func() (map[string]string, error)
	}{
		{"by path", func(md map[string]string) error { return Replace(path, md) }, func() (map[string]string, error) { return Read(path) }},
		{"by open file", func(md map[string]string) error { return ReplaceFile(f, md) }, func() (map[string]string, error) { return ReadFile(f) }},
	}
	steps := []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"a": "1", "b": "2"}, "map[a:1 b:2]"},
		{map[string]string{"b": "3", "c": ""}, "map[b:3 c:]"},
		{map[string]string{}, "map[]"},
	}
	for _, way := range ways {
		t.Run(way.name, func(t *testing.T) {
			for i, st := range steps {
				if err := way.replace(st.set); err != nil {
					t.Skipf("the temp filesystem keeps no user xattrs: %v", err)
				}
				got, err := way.read()
				if err != nil || fmt.Sprint(got) != st.want {
					t.Fatalf("step %d: %v %v, want %s", i, got, err, st.want)
				}
				if other, _ := Read(path); fmt.Sprint(other) != st.want {
					t.Fatalf("step %d: the path shows %v, want %s", i, other, st.want)
				}
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("reading a missing file succeeded")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		md   map[string]string
		ok   bool
	}{
		{"none", nil, true},
		{"plain", map[string]string{"author": "me", "purpose": "a test, with spaces & signs!"}, true},
		{"empty key", map[string]string{"": "x"}, false},
		{"longest key", map[string]string{strings.Repeat("k", MaxKeyLen): "v"}, true},
		{"key too long", map[string]string{strings.Repeat("k", MaxKeyLen+1): "v"}, false},
		{"control byte in a value", map[string]string{"k": "a\nb"}, false},
		{"non-ASCII value", map[string]string{"k": "caf\u00e9"}, false},
		{"non-ASCII key", map[string]string{"cl\u00e9": "v"}, false},
		{"too much in all", map[string]string{"a": strings.Repeat("v", 2100), "b": strings.Repeat("v", 2100)}, false},
	}
	for _, tc := range cases {
		err := Validate(tc.md)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestNamespace: metadata lives in user.e2b.*, keys come back without the
// prefix, and the file's other user.* attributes are neither reported nor
// removed by a replace.
func TestNamespace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(path, "user.other", []byte("keep me"), 0); err != nil {
		t.Skipf("the temp filesystem keeps no user xattrs: %v", err)
	}
	if err := Replace(path, map[string]string{"author": "me"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "user.e2b.author", buf)
	if err != nil || string(buf[:n]) != "me" {
		t.Fatalf("user.e2b.author: %q, %v", buf[:n], err)
	}
	if md, err := Read(path); err != nil || fmt.Sprint(md) != "map[author:me]" {
		t.Fatalf("read %v, %v: want only the e2b key, unprefixed", md, err)
	}
	if err := unix.Setxattr(path, "user.e2b.bad", []byte{0xff, 0xfe}, 0); err != nil {
		t.Fatal(err)
	}
	if md, err := Read(path); err != nil || fmt.Sprint(md) != "map[author:me]" {
		t.Fatalf("read %v, %v: a value that is not UTF-8 must be left out", md, err)
	}
	if err := Replace(path, nil); err != nil {
		t.Fatal(err)
	}
	if md, err := Read(path); err != nil || md != nil {
		t.Fatalf("after clearing: %v, %v", md, err)
	}
	if n, err := unix.Getxattr(path, "user.other", buf); err != nil || string(buf[:n]) != "keep me" {
		t.Fatalf("user.other after clearing: %q, %v", buf[:n], err)
	}
}
