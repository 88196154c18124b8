package fsmeta

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
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
