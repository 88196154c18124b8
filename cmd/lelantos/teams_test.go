package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// captureStdout runs fn with os.Stdout going to a pipe and returns what it
// printed.
func captureStdout(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	ferr := fn()
	os.Stdout = old
	w.Close()
	return <-out, ferr
}

// TestKeysAndTeamsCommands drives `lelantos keys` and `lelantos teams` on a
// store as the server leaves it: a key of a new team, its listing, quotas
// set and reset, and refusals naming the bad argument.
func TestKeysAndTeamsCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "lelantos.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	out, err := captureStdout(t, func() error { return keys(ctx, []string{"create", "ci", "--team", "acme", "--data-dir", dir}) })
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	key := regexp.MustCompile(`(?m)^e2b_[0-9a-f]{40}$`).FindString(out)
	if !strings.Contains(out, "created team acme") || key == "" {
		t.Fatalf("keys create printed:\n%s", out)
	}
	p, err := controlplane.NewAuthenticator(db, nil).Authenticate(ctx, key)
	if err != nil || p.TeamSlug != "acme" {
		t.Fatalf("the printed key: %+v, %v", p, err)
	}
	// A second key of the same team makes no team; no --team is the default team.
	out, err = captureStdout(t, func() error { return keys(ctx, []string{"--data-dir", dir, "create", "ci2", "--team", "acme"}) })
	if err != nil || strings.Contains(out, "created team") {
		t.Fatalf("a second key of acme: %v\n%s", err, out)
	}
	if _, err := captureStdout(t, func() error { return keys(ctx, []string{"create", "admin2", "--data-dir", dir}) }); err != nil {
		t.Fatal(err)
	}
	out, err = captureStdout(t, func() error { return keys(ctx, []string{"list", "--data-dir", dir, "--team", "acme"}) })
	if err != nil || strings.Count(out, " acme ") != 2 || strings.Contains(out, "admin2") {
		t.Fatalf("keys list --team acme: %v\n%s", err, out)
	}
	out, err = captureStdout(t, func() error { return keys(ctx, []string{"list", "--data-dir", dir}) })
	if err != nil || !regexp.MustCompile(`(?m)^\S+\s+default\s+admin2\s`).MatchString(out) {
		t.Fatalf("keys list: %v\n%s", err, out)
	}

	if _, err := captureStdout(t, func() error {
		return teamsCmd(ctx, []string{"set", "acme", "--max-sandboxes", "3", "--max-builds", "0", "--data-dir", dir})
	}); err != nil {
		t.Fatal(err)
	}
	acme, err := db.TeamBySlug(ctx, "acme")
	if err != nil || acme.Quotas.MaxSandboxes == nil || *acme.Quotas.MaxSandboxes != 3 || acme.Quotas.MaxBuilds == nil ||
		*acme.Quotas.MaxBuilds != 0 || acme.Quotas.MaxVCPU != nil {
		t.Fatalf("acme after teams set: %+v, %v", acme, err)
	}
	if _, err := captureStdout(t, func() error {
		return teamsCmd(ctx, []string{"set", "acme", "--max-sandboxes", "default", "--max-vcpu", "8", "--data-dir", dir})
	}); err != nil {
		t.Fatal(err)
	}
	acme, _ = db.TeamBySlug(ctx, "acme")
	if acme.Quotas.MaxSandboxes != nil || acme.Quotas.MaxVCPU == nil || *acme.Quotas.MaxVCPU != 8 || acme.Quotas.MaxBuilds == nil {
		t.Fatalf("acme after a reset to the default: %+v", acme.Quotas)
	}
	if _, err := captureStdout(t, func() error {
		return teamsCmd(ctx, []string{"create", "beta", "--name", "Team Beta", "--max-memory-mb", "4096", "--data-dir", dir})
	}); err != nil {
		t.Fatal(err)
	}
	out, err = captureStdout(t, func() error { return teamsCmd(ctx, []string{"list", "--data-dir", dir}) })
	if err != nil || !regexp.MustCompile(`(?m)^beta\s+Team Beta\s+\S+\s+0\s+default\s+default\s+4096\s+default\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^acme\s+acme\s+\S+\s+2\s+default\s+8\s+default\s+unlimited\s`).MatchString(out) {
		t.Fatalf("teams list: %v\n%s", err, out)
	}

	for _, tt := range []struct {
		name string
		run  func() error
		want string
	}{
		{"a bad slug", func() error { return keys(ctx, []string{"create", "k", "--team", "Bad/Slug", "--data-dir", dir}) }, `--team: team: "Bad/Slug" must be`},
		{"an existing team", func() error { return teamsCmd(ctx, []string{"create", "beta", "--data-dir", dir}) }, `team "beta" already exists`},
		{"an unknown team", func() error { return teamsCmd(ctx, []string{"set", "nope", "--max-vcpu", "1", "--data-dir", dir}) }, `team "nope" not found`},
		{"a negative quota", func() error { return teamsCmd(ctx, []string{"set", "acme", "--max-vcpu", "-1", "--data-dir", dir}) }, `max-vcpu`},
		{"no store", func() error { return teamsCmd(ctx, []string{"list", "--data-dir", filepath.Join(dir, "none")}) }, "no store at"},
		{"an unknown team to list", func() error { return keys(ctx, []string{"list", "--team", "nope", "--data-dir", dir}) }, `--team: team "nope" not found`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := captureStdout(t, tt.run)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
