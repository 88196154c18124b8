package filesystem

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/fsmeta"
	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
)

func TestListDirDepth(t *testing.T) {
	root := openDir(t)
	tree(t, root, "a/b/c/d.txt", "a/top.txt", "e/", "f.txt")
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, fixedDefaults{user: "root"})
	rel := func(base string, es []*pb.EntryInfo) []string {
		var out []string
		for _, e := range es {
			r, _ := filepath.Rel(base, e.GetPath())
			out = append(out, r)
		}
		slices.Sort(out)
		return out
	}
	cases := []struct {
		name  string
		path  string
		depth uint32
		want  []string
	}{
		{"depth 0 means 1", root, 0, []string{"a", "e", "f.txt", "link"}},
		{"depth 1", root, 1, []string{"a", "e", "f.txt", "link"}},
		{"depth 2", root, 2, []string{"a", "a/b", "a/top.txt", "e", "f.txt", "link"}},
		{"depth 4 does not enter symlinks", root, 4, []string{"a", "a/b", "a/b/c", "a/b/c/d.txt", "a/top.txt", "e", "f.txt", "link"}},
		{"through a symlinked directory", filepath.Join(root, "link"), 2, []string{"b", "b/c", "top.txt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.ListDir(context.Background(), as("", &pb.ListDirRequest{Path: tc.path, Depth: tc.depth}))
			if err != nil {
				t.Fatal(err)
			}
			if got := rel(tc.path, res.Msg.GetEntries()); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEntryInfoFields(t *testing.T) {
	root := openDir(t)
	tree(t, root, "file.txt", "dir/")
	file := filepath.Join(root, "file.txt")
	if err := os.Symlink("file.txt", filepath.Join(root, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "sticky"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "sticky"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := fsmeta.Replace(file, map[string]string{"author": "me"}); err != nil {
		t.Skipf("the temp filesystem keeps no user xattrs: %v", err)
	}
	c := newClient(t, fixedDefaults{user: "root"})
	cases := []struct {
		path  string
		check func(e *pb.EntryInfo) bool
	}{
		{"file.txt", func(e *pb.EntryInfo) bool {
			return e.GetType() == pb.FileType_FILE_TYPE_FILE && e.GetMode() == 0o644 && e.GetPermissions() == "-rw-r--r--" &&
				e.GetSize() == 8 && e.GetOwner() == "root" && e.GetGroup() == "root" && e.GetName() == "file.txt" &&
				e.GetMetadata()["author"] == "me" && e.GetModifiedTime().AsTime().Unix() > 0 && e.SymlinkTarget == nil
		}},
		{"dir", func(e *pb.EntryInfo) bool {
			return e.GetType() == pb.FileType_FILE_TYPE_DIRECTORY && e.GetPermissions() == "drwxr-xr-x" && e.GetMode() == 0o755
		}},
		{"sym", func(e *pb.EntryInfo) bool {
			return e.GetType() == pb.FileType_FILE_TYPE_SYMLINK && e.GetSymlinkTarget() == file && e.GetPermissions()[0] == 'l'
		}},
		{"sticky", func(e *pb.EntryInfo) bool { return e.GetPermissions() == "drwxrwxrwt" }},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			res, err := c.Stat(context.Background(), as("", &pb.StatRequest{Path: filepath.Join(root, tc.path)}))
			if err != nil {
				t.Fatal(err)
			}
			if e := res.Msg.GetEntry(); !tc.check(e) || e.GetPath() != filepath.Join(root, tc.path) {
				t.Fatalf("entry %v", e)
			}
		})
	}
}

func TestOperationsAndErrors(t *testing.T) {
	root := openDir(t)
	tree(t, root, "file.txt", "dir/inner.txt", "private/secret.txt", "shared/")
	if err := os.Chmod(filepath.Join(root, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "shared"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	tree(t, root, "shared/roots.txt")
	c := newClient(t, fixedDefaults{user: "root", workdir: root})
	ctx := context.Background()
	p := func(s string) string { return filepath.Join(root, s) }
	cases := []struct {
		name string
		call func() error
		want connect.Code
		then func(t *testing.T)
	}{
		{"stat missing", func() error { _, err := c.Stat(ctx, as("", &pb.StatRequest{Path: p("nope")})); return err }, connect.CodeNotFound, nil},
		{"stat relative to the home", func() error {
			_, err := c.Stat(ctx, as("", &pb.StatRequest{Path: "nope-in-root-home-xyz"}))
			return err
		}, connect.CodeNotFound, nil},
		{"empty path is the workdir", func() error {
			res, err := c.ListDir(ctx, as("", &pb.ListDirRequest{}))
			if err == nil && len(res.Msg.GetEntries()) != 4 {
				t.Errorf("listed %d entries of the workdir", len(res.Msg.GetEntries()))
			}
			return err
		}, 0, nil},
		{"list a file", func() error { _, err := c.ListDir(ctx, as("", &pb.ListDirRequest{Path: p("file.txt")})); return err }, connect.CodeInvalidArgument, nil},
		{"list missing", func() error { _, err := c.ListDir(ctx, as("", &pb.ListDirRequest{Path: p("nope")})); return err }, connect.CodeNotFound, nil},
		{"bad home expansion", func() error { _, err := c.Stat(ctx, as("", &pb.StatRequest{Path: "~other/x"})); return err }, connect.CodeInvalidArgument, nil},
		{"unknown user", func() error { _, err := c.Stat(ctx, as("no-such-user-xyz", &pb.StatRequest{Path: root})); return err }, connect.CodeUnauthenticated, nil},
		{"makedir existing dir", func() error { _, err := c.MakeDir(ctx, as("", &pb.MakeDirRequest{Path: p("dir")})); return err }, connect.CodeAlreadyExists, nil},
		{"makedir over a file", func() error { _, err := c.MakeDir(ctx, as("", &pb.MakeDirRequest{Path: p("file.txt")})); return err }, connect.CodeAlreadyExists, nil},
		{"makedir under a file", func() error {
			_, err := c.MakeDir(ctx, as("", &pb.MakeDirRequest{Path: p("file.txt/sub")}))
			return err
		}, connect.CodeInvalidArgument, nil},
		{"makedir with parents", func() error {
			res, err := c.MakeDir(ctx, as("", &pb.MakeDirRequest{Path: p("x/y/z")}))
			if err == nil && (res.Msg.GetEntry().GetType() != pb.FileType_FILE_TYPE_DIRECTORY || res.Msg.GetEntry().GetPath() != p("x/y/z")) {
				t.Errorf("entry %v", res.Msg.GetEntry())
			}
			return err
		}, 0, nil},
		{"move missing", func() error {
			_, err := c.Move(ctx, as("", &pb.MoveRequest{Source: p("nope"), Destination: p("n2")}))
			return err
		}, connect.CodeNotFound, nil},
		{"move into new parents", func() error {
			res, err := c.Move(ctx, as("", &pb.MoveRequest{Source: p("dir"), Destination: p("moved/deeper/dir2")}))
			if err == nil && res.Msg.GetEntry().GetPath() != p("moved/deeper/dir2") {
				t.Errorf("entry %v", res.Msg.GetEntry())
			}
			return err
		}, 0, func(t *testing.T) {
			if _, err := os.Stat(p("moved/deeper/dir2/inner.txt")); err != nil {
				t.Fatal(err)
			}
		}},
		{"move a directory into itself", func() error {
			_, err := c.Move(ctx, as("", &pb.MoveRequest{Source: p("x"), Destination: p("x/y/inside")}))
			return err
		}, connect.CodeInvalidArgument, nil},
		{"remove missing succeeds", func() error { _, err := c.Remove(ctx, as("", &pb.RemoveRequest{Path: p("nope")})); return err }, 0, nil},
		{"remove under a missing directory succeeds", func() error {
			_, err := c.Remove(ctx, as("", &pb.RemoveRequest{Path: p("nope/deeper/x")}))
			return err
		}, 0, nil},
		{"remove under a file is invalid", func() error {
			_, err := c.Remove(ctx, as("", &pb.RemoveRequest{Path: p("file.txt/x")}))
			return err
		}, connect.CodeInvalidArgument, nil},
		{"remove a tree", func() error { _, err := c.Remove(ctx, as("", &pb.RemoveRequest{Path: p("moved")})); return err }, 0, func(t *testing.T) {
			if _, err := os.Stat(p("moved")); !os.IsNotExist(err) {
				t.Fatalf("still there: %v", err)
			}
		}},
		{"nobody: stat inside a private dir", func() error {
			_, err := c.Stat(ctx, as("nobody", &pb.StatRequest{Path: p("private/secret.txt")}))
			return err
		}, connect.CodePermissionDenied, nil},
		{"nobody: list a private dir", func() error {
			_, err := c.ListDir(ctx, as("nobody", &pb.ListDirRequest{Path: p("private")}))
			return err
		}, connect.CodePermissionDenied, nil},
		{"nobody: makedir in a root dir", func() error {
			_, err := c.MakeDir(ctx, as("nobody", &pb.MakeDirRequest{Path: p("new-by-nobody")}))
			return err
		}, connect.CodePermissionDenied, nil},
		{"nobody: remove a missing path inside a private dir is refused", func() error {
			_, err := c.Remove(ctx, as("nobody", &pb.RemoveRequest{Path: p("private/nope")}))
			return err
		}, connect.CodePermissionDenied, nil},
		{"nobody: remove a root file", func() error {
			_, err := c.Remove(ctx, as("nobody", &pb.RemoveRequest{Path: p("file.txt")}))
			return err
		}, connect.CodePermissionDenied, nil},
		{"nobody: move a root file", func() error {
			_, err := c.Move(ctx, as("nobody", &pb.MoveRequest{Source: p("file.txt"), Destination: p("shared/stolen")}))
			return err
		}, connect.CodePermissionDenied, nil},
		{"nobody: remove another's file in a sticky dir", func() error {
			_, err := c.Remove(ctx, as("nobody", &pb.RemoveRequest{Path: p("shared/roots.txt")}))
			return err
		}, connect.CodePermissionDenied, nil},
		{"nobody: makedir in a shared dir is owned by nobody", func() error {
			res, err := c.MakeDir(ctx, as("nobody", &pb.MakeDirRequest{Path: p("shared/mine/sub")}))
			if err == nil && res.Msg.GetEntry().GetOwner() != "nobody" {
				t.Errorf("owner %q", res.Msg.GetEntry().GetOwner())
			}
			return err
		}, 0, func(t *testing.T) {
			var st syscall.Stat_t
			if err := syscall.Stat(p("shared/mine"), &st); err != nil || st.Uid != 65534 {
				t.Fatalf("parent owner %d: %v", st.Uid, err)
			}
		}},
		{"nobody: remove own tree", func() error {
			_, err := c.Remove(ctx, as("nobody", &pb.RemoveRequest{Path: p("shared/mine")}))
			return err
		}, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); codeOf(err) != tc.want || (tc.want == 0 && err != nil) {
				t.Fatalf("err %v, want code %v", err, tc.want)
			}
			if tc.then != nil {
				tc.then(t)
			}
		})
	}
}
