package insandbox

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

// TestE2BFileBehaviours checks, where the daemon really runs, the file
// behaviours the e2b clients expect of E2B's daemon: metadata in the user.e2b.
// namespace, an overwrite without metadata clearing it, removing a missing path
// succeeding, and missing parents made owned by the writer, except inside
// directories the writer may not write, which stays refused (a deliberate
// difference from E2B, whose root daemon makes them).
func TestE2BFileBehaviours(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.47.0/24")
	e := node.Engine(t)
	for _, class := range []string{gvisor.Class, runc.Class} {
		t.Run(class, func(t *testing.T) {
			spec := engine.Spec{
				ID: "envdbehave" + class, TemplateID: "base", RootfsPath: enginetest.BaseRootfs(t), RuntimeClass: class,
				CPUCount: 1, MemoryMB: 512, DiskSizeMB: 512, AccessToken: "tok-behave-" + class, DefaultUser: "user",
			}
			st, err := e.Create(context.Background(), spec)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			t.Cleanup(func() { _ = e.Kill(context.Background(), spec.ID) })
			root, user := newDaemon(t, st, "root"), newDaemon(t, st, "user")
			bg := context.Background()

			// Metadata: stored as user.e2b.<key>, reported without the prefix,
			// and other user.* attributes are neither reported nor removed.
			const f = "/home/user/meta.txt"
			if code, body := user.uploadWith(f, "one", map[string]string{"X-Metadata-Author": "me"}); code != 200 || !strings.Contains(body, `"metadata":{"author":"me"}`) {
				t.Fatalf("write with metadata: %d %s", code, body)
			}
			xattrs := `python3 -c 'import os,sys; print(" ".join(sorted(n+"="+os.getxattr(sys.argv[1],n).decode() for n in os.listxattr(sys.argv[1]))))' `
			if got := user.sh(xattrs + f); got != "user.e2b.author=me" {
				t.Errorf("attributes of the file: %q, want user.e2b.author=me", got)
			}
			user.sh(`python3 -c 'import os; os.setxattr("` + f + `", "user.other", b"mine")'`)
			res, err := user.fs.Stat(bg, rpcRequest(&pb.StatRequest{Path: f}))
			if err != nil || len(res.Msg.GetEntry().GetMetadata()) != 1 || res.Msg.GetEntry().GetMetadata()["author"] != "me" {
				t.Errorf("stat metadata: %v, %v; want only author=me", res.Msg.GetEntry().GetMetadata(), err)
			}

			// An overwrite without metadata clears it.
			if code, body := user.uploadWith(f, "two", nil); code != 200 || strings.Contains(body, "metadata") {
				t.Errorf("overwrite without metadata: %d %s", code, body)
			}
			if got := user.sh(xattrs + f); got != "user.other=mine" {
				t.Errorf("attributes after the overwrite: %q, want only user.other=mine", got)
			}

			// Removing a missing path succeeds; under a directory the user may
			// not search it is still refused.
			if _, err := user.fs.Remove(bg, rpcRequest(&pb.RemoveRequest{Path: "/home/user/never-was"})); err != nil {
				t.Errorf("remove a missing path: %v", err)
			}
			if _, err := user.fs.Remove(bg, rpcRequest(&pb.RemoveRequest{Path: "/root/never-was"})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("remove a missing path in /root as user: %v, want permission_denied", err)
			}

			// Missing parents are made, owned by the writer.
			if code := user.upload("/home/user/a/b/c.txt", "deep"); code != 200 {
				t.Errorf("write with missing parents: %d", code)
			}
			if got := root.sh("stat -c %U:%G /home/user/a /home/user/a/b /home/user/a/b/c.txt | sort -u"); got != "user:user" {
				t.Errorf("the parents and the file are owned by %q, want user:user", got)
			}

			// A missing parent inside a directory the user may not write is
			// refused, and nothing is left behind.
			root.sh("rm -rf /etc/sudoers.d")
			if code := user.upload("/etc/sudoers.d/user", "user ALL=(ALL) NOPASSWD: ALL"); code != 403 {
				t.Errorf("user plants /etc/sudoers.d/user: %d, want 403", code)
			}
			if got := root.sh("test -e /etc/sudoers.d && echo present || echo absent"); got != "absent" {
				t.Errorf("after the refused write /etc/sudoers.d is %s", got)
			}
			if code := root.upload("/etc/sudoers.d/made-by-root", "# root may"); code != 200 {
				t.Errorf("root makes /etc/sudoers.d: %d", code)
			}
		})
	}
}
