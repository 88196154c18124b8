package engine_test

import (
	"context"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestTreesInUse: a tree is in use while a sandbox runs on it, and after the
// sandbox is gone while a snapshot of it is kept; once both are gone it is
// not, so a node may remove it.
func TestTreesInUse(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.65.0/24")
	e := node.Engine(t)
	ctx := context.Background()
	// Another path to the base tree stands for a template tree of its own.
	tree := t.TempDir()
	if err := unix.Mount(enginetest.BaseRootfs(t), tree, "", unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Skipf("needs bind mounts (root, mount namespace): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(tree, unix.MNT_DETACH) })
	inUse := func() bool {
		t.Helper()
		trees, err := e.TreesInUse()
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(trees, tree)
	}
	if inUse() {
		t.Fatal("the tree is in use before anything runs on it")
	}
	spec := newSpec(t, "trsrc")
	spec.RootfsPath = tree
	src := create(t, e, spec)
	if !inUse() {
		t.Fatal("the tree of a running sandbox is not in use")
	}
	if _, err := e.TakeSnapshot(ctx, src.Spec.ID, "trsnap"); err != nil {
		t.Fatal(err)
	}
	if err := e.Kill(ctx, src.Spec.ID); err != nil {
		t.Fatal(err)
	}
	if !inUse() {
		t.Fatal("the tree of a kept snapshot is not in use")
	}
	if err := e.DeleteSnapshot(ctx, "trsnap"); err != nil {
		t.Fatal(err)
	}
	if inUse() {
		t.Fatal("the tree is still in use with its sandbox and snapshot gone")
	}
	if _, err := os.Stat(tree + "/bin"); err != nil {
		t.Fatal(err)
	}
}
