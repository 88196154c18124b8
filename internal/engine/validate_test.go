package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestValidateRootfs: a template's /bin is looked up inside its tree, links
// included, never on the host.
func TestValidateRootfs(t *testing.T) {
	host := t.TempDir() // exists on the host, not in any tree
	if err := os.Mkdir(filepath.Join(host, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(tree string) error
		ok    bool
	}{
		{"a bin directory", func(tree string) error { return os.Mkdir(filepath.Join(tree, "bin"), 0o755) }, true},
		{"bin a link inside the tree", func(tree string) error {
			if err := os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755); err != nil {
				return err
			}
			return os.Symlink("/usr/bin", filepath.Join(tree, "bin"))
		}, true},
		{"no bin", func(string) error { return nil }, false},
		{"bin a link to a host directory", func(tree string) error {
			return os.Symlink(filepath.Join(host, "bin"), filepath.Join(tree, "bin"))
		}, false},
		{"bin a link up to a host directory", func(tree string) error {
			rel, _ := filepath.Rel(tree, filepath.Join(host, "bin"))
			return os.Symlink(rel, filepath.Join(tree, "bin"))
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree := t.TempDir()
			if err := tc.setup(tree); err != nil {
				t.Fatal(err)
			}
			err := validate(Spec{ID: "sb1", RootfsPath: tree, CPUCount: 1, MemoryMB: 256, DiskSizeMB: 256})
			if tc.ok && err != nil {
				t.Fatalf("validate: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("validate: %v, want ErrInvalid", err)
			}
		})
	}
}
