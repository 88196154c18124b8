package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/client"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		stopAfter int
		want      []string
		user      string
		wantErr   string
	}{
		{"flags around the ID", []string{"--user", "root", "abc", "--json"}, 0, []string{"abc"}, "root", ""},
		{"command after the ID", []string{"abc", "ls", "-la"}, 1, []string{"abc", "ls", "-la"}, "", ""},
		{"flags after the ID, then the command", []string{"abc", "--user", "root", "ls", "-l"}, 1, []string{"abc", "ls", "-l"}, "root", ""},
		{"double dash ends the flags", []string{"abc", "--user=root", "--", "--user", "x"}, 1, []string{"abc", "--user", "x"}, "root", ""},
		{"double dash first", []string{"--", "abc", "-x"}, 0, []string{"abc", "-x"}, "", ""},
		{"unknown flag", []string{"abc", "--gpu"}, 0, nil, "", "unknown flag --gpu"},
		{"missing value", []string{"abc", "--user"}, 0, nil, "", "--user needs a value"},
		{"bad bool", []string{"--json=maybe"}, 0, nil, "", `--json "maybe": want true or false`},
		{"bad seconds", []string{"--timeout", "1.5"}, 0, nil, "", `--timeout "1.5": not a number of seconds`},
		{"bad pair", []string{"--env", "=x"}, 0, nil, "", `--env "=x": want KEY=VALUE`},
		{"bad duration", []string{"--since", "-1m"}, 0, nil, "", `--since "-1m": not a positive duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var api apiFlags
			fs := sandboxFlags("test", &api)
			user := fs.String("user", "", "")
			fs.Bool("json", false, "")
			timeout := 0
			fs.Var(secondsFlag{&timeout}, "timeout", "")
			fs.Var(pairsFlag{}, "env", "")
			var since time.Duration
			fs.Var(sinceFlag{&since}, "since", "")
			got, err := parseFlags(fs, tt.args, tt.stopAfter)
			if tt.wantErr != "" {
				var u *usageError
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || !errors.As(err, &u) {
					t.Fatalf("err = %v, want a usage error starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) || *user != tt.user {
				t.Errorf("got %q, user %q, err %v; want %q, user %q", got, *user, err, tt.want, tt.user)
			}
		})
	}
}

func TestParseRemote(t *testing.T) {
	tests := []struct {
		in     string
		want   remotePath
		remote bool
	}{
		{"abc123:/tmp/x", remotePath{"abc123", "/tmp/x"}, true},
		{"abc:rel/path", remotePath{"abc", "rel/path"}, true},
		{"abc:", remotePath{"abc", ""}, true},
		{"./abc:x", remotePath{}, false},
		{"/tmp/a:b", remotePath{}, false},
		{"Abc:/x", remotePath{}, false},
		{"-", remotePath{}, false},
		{":x", remotePath{}, false},
		{"file.txt", remotePath{}, false},
	}
	for _, tt := range tests {
		got, ok := parseRemote(tt.in)
		if ok != tt.remote || got != tt.want {
			t.Errorf("parseRemote(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.remote)
		}
	}
}

func TestLogCursor(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(us int, line string) client.LogLine {
		return client.LogLine{Timestamp: base.Add(time.Duration(us) * time.Microsecond), Line: line}
	}
	lines := func(ls []client.LogLine) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Line)
		}
		return out
	}
	cur := logCursor{seen: map[string]int{}}
	// Pages as the server gives them: every line at or after the bound,
	// which is the previous page's last line cut to the millisecond.
	pages := []struct {
		page       []client.LogLine
		want       []string
		wantBound  time.Time
		wantAdvRes bool
	}{
		{[]client.LogLine{at(0, "a"), at(1500, "b"), at(1700, "c")}, []string{"a", "b", "c"}, base.Add(time.Millisecond), true},
		{[]client.LogLine{at(1500, "b"), at(1700, "c")}, nil, base.Add(time.Millisecond), false},
		{[]client.LogLine{at(1500, "b"), at(1700, "c"), at(1700, "c"), at(2100, "d")}, []string{"c", "d"}, base.Add(2 * time.Millisecond), true},
		{[]client.LogLine{at(2100, "d")}, nil, base.Add(2 * time.Millisecond), false},
		{nil, nil, base.Add(2 * time.Millisecond), false},
	}
	for i, p := range pages {
		fresh, advanced := cur.next(p.page)
		if !slices.Equal(lines(fresh), p.want) || advanced != p.wantAdvRes || !cur.start.Equal(p.wantBound) {
			t.Errorf("page %d: fresh %v, advanced %v, bound %v; want %v, %v, %v", i, lines(fresh), advanced, cur.start,
				p.want, p.wantAdvRes, p.wantBound)
		}
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{exitCode(5), 5},
		{usagef("bad"), 2},
		{errors.New("other"), 1},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.err); got != tt.want {
			t.Errorf("exitStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
