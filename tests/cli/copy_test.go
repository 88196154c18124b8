package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fileSum is the hex SHA-256 of a local file.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func testCopy(t *testing.T, s *server, a string) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	data := make([]byte, 20<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := fileSum(t, big)

	// Upload to a file path, then to a directory (the file keeps its name).
	s.ok(t, "sandbox", "cp", big, a+":/tmp/up/big-copy.bin")
	s.ok(t, "sandbox", "cp", big, a+":/tmp")
	for _, p := range []string{"/tmp/up/big-copy.bin", "/tmp/big.bin"} {
		out := s.ok(t, "sandbox", "exec", a, "--", "sha256sum", p)
		if got := strings.Fields(out); len(got) == 0 || got[0] != want {
			t.Errorf("sha256 of %s in the sandbox: %q, want %s", p, out, want)
		}
	}
	// Download to a directory and to a file name.
	down := filepath.Join(dir, "down")
	if err := os.Mkdir(down, 0o755); err != nil {
		t.Fatal(err)
	}
	s.ok(t, "sandbox", "cp", a+":/tmp/up/big-copy.bin", down)
	s.ok(t, "sandbox", "cp", a+":/tmp/big.bin", filepath.Join(dir, "named.bin"))
	for _, p := range []string{filepath.Join(down, "big-copy.bin"), filepath.Join(dir, "named.bin")} {
		if got := fileSum(t, p); got != want {
			t.Errorf("sha256 of the download %s: %s, want %s", p, got, want)
		}
	}
	// stdin and stdout.
	if r := s.run(t, "from stdin\n", nil, "sandbox", "cp", "-", a+":notes/stdin.txt"); r.code != 0 {
		t.Fatalf("cp - ID:path: exit %d, %q", r.code, r.stderr)
	}
	if out := s.ok(t, "sandbox", "cp", a+":/home/user/notes/stdin.txt", "-"); out != "from stdin\n" {
		t.Errorf("cp ID:path -: %q", out)
	}
	if out := s.ok(t, "sandbox", "exec", a, "stat -c %U notes/stdin.txt"); out != "user\n" {
		t.Errorf("owner of the upload: %q, want user", out)
	}

	// A missing file: one line naming it, and no local file left behind.
	r := s.cli(t, "sandbox", "cp", a+":/tmp/missing.bin", filepath.Join(dir, "missing.bin"))
	if r.code != 1 || !strings.Contains(r.stderr, "/tmp/missing.bin") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("cp of a missing file: exit %d, stderr %q", r.code, r.stderr)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*missing*")); len(entries) != 0 {
		t.Errorf("a failed download left %v", entries)
	}
	if r := s.cli(t, "sandbox", "cp", big, filepath.Join(dir, "x")); r.code != 2 || !strings.Contains(r.stderr, "ID:/path") {
		t.Errorf("cp between local paths: exit %d, stderr %q", r.code, r.stderr)
	}

	t.Run("progress on a terminal", func(t *testing.T) {
		term := s.startTerminal(t, 24, 120, "sandbox", "cp", a+":/tmp/big.bin", filepath.Join(dir, "tty.bin"))
		if code := term.wait(t); code != 0 {
			t.Fatalf("cp on a terminal: exit %d:\n%s", code, term.String())
		}
		// The reader may lag behind the exit a moment.
		term.waitFor(t, "100%", 5*time.Second)
		if out := term.String(); !strings.Contains(out, fmt.Sprintf("%.1f MiB / %.1f MiB", 20.0, 20.0)) {
			t.Errorf("progress line: %q", out)
		}
		if got := fileSum(t, filepath.Join(dir, "tty.bin")); got != want {
			t.Errorf("sha256 of the download on a terminal: %s, want %s", got, want)
		}
	})
}
