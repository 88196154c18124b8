package envd

import (
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
)

// TestSymlinksIntoRootFiles asks, as an unprivileged user, for paths that lead
// through the user's own symlinks to root-only files and directories, and for
// a path whose component the user swaps for such a symlink between two
// requests. Each must be refused and leave the root-only files as they were.
func TestSymlinksIntoRootFiles(t *testing.T) {
	a := newArena(t)
	a.symlink("to-secret", filepath.Join(a.vault, "secret"))
	a.symlink("to-vault", a.vault)
	a.symlink("to-shadow", "/etc/shadow")
	fsErr := func(_ any, err error) error { return err }
	bg := context.Background()
	cases := []struct {
		name string
		// try sends the request and returns its error: a refusal, or a
		// description of what got through.
		try func() error
	}{
		{"download a symlink to a root file", func() error { return a.refusedDownload(a.p("to-secret")) }},
		{"download through a symlinked root dir", func() error { return a.refusedDownload(a.p("to-vault/secret")) }},
		{"download a symlink to /etc/shadow", func() error { return a.refusedDownload(a.p("to-shadow")) }},
		{"download /etc/shadow", func() error { return a.refusedDownload("/etc/shadow") }},
		{"overwrite through a symlink", func() error { return a.refusedUpload(a.p("to-secret")) }},
		{"create through a symlinked root dir", func() error { return a.refusedUpload(a.p("to-vault/new")) }},
		{"create parents through a symlinked root dir", func() error { return a.refusedUpload(a.p("to-vault/a/b/new")) }},
		{"multipart with one part through a symlink", func() error { return a.refusedMultipart(a.p("fine.txt"), a.p("to-secret")) }},
		{"stat through a symlinked root dir", func() error {
			return a.refusedRPC(fsErr(a.fs.Stat(bg, as(&pb.StatRequest{Path: a.p("to-vault/secret")}))))
		}},
		{"list a symlinked root dir", func() error {
			return a.refusedRPC(fsErr(a.fs.ListDir(bg, as(&pb.ListDirRequest{Path: a.p("to-vault")}))))
		}},
		{"makedir through a symlinked root dir", func() error {
			return a.refusedRPC(fsErr(a.fs.MakeDir(bg, as(&pb.MakeDirRequest{Path: a.p("to-vault/made")}))))
		}},
		{"move a root file out", func() error {
			return a.refusedRPC(fsErr(a.fs.Move(bg, as(&pb.MoveRequest{Source: a.p("to-vault/secret"), Destination: a.p("loot")}))))
		}},
		{"move a file over a root file", func() error {
			a.ownFile(a.p("mine"), "mine")
			return a.refusedRPC(fsErr(a.fs.Move(bg, as(&pb.MoveRequest{Source: a.p("mine"), Destination: a.p("to-vault/secret")}))))
		}},
		{"remove a root file", func() error {
			return a.refusedRPC(fsErr(a.fs.Remove(bg, as(&pb.RemoveRequest{Path: a.p("to-vault/secret")}))))
		}},
		{"watch a symlinked root dir", func() error {
			return a.refusedRPC(fsErr(a.fs.CreateWatcher(bg, as(&pb.CreateWatcherRequest{Path: a.p("to-vault")}))))
		}},
		{"stream a watch of a symlinked root dir", func() error {
			stream, err := a.fs.WatchDir(bg, as(&pb.WatchDirRequest{Path: a.p("to-vault")}))
			if err == nil {
				for stream.Receive() {
					if stream.Msg().GetStart() != nil {
						_ = stream.Close()
						return fmt.Errorf("the watch started")
					}
				}
				err = stream.Err()
			}
			return a.refusedRPC(err)
		}},
		{"swapped between requests", func() error {
			a.symlink("flip", a.p("dir"))
			if status, body := a.download(a.p("flip/secret")); status != 200 || body != a.decoy {
				return fmt.Errorf("the attacker's own file: %d %q", status, body)
			}
			a.symlink("flip", a.vault)
			if err := a.refusedDownload(a.p("flip/secret")); err != nil {
				return err
			}
			if err := a.refusedRPC(fsErr(a.fs.Stat(bg, as(&pb.StatRequest{Path: a.p("flip/secret")})))); err != nil {
				return err
			}
			return a.refusedUpload(a.p("flip/secret"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.try(); err != nil {
				t.Fatal(err)
			}
			if change := a.vaultChange(); change != "" {
				t.Fatalf("the request changed the vault: %s", change)
			}
		})
	}
}

// refusedDownload returns nil when the daemon refuses to read path as the
// attacker with 403, and what happened otherwise.
func (a *arena) refusedDownload(path string) error {
	status, body := a.download(path)
	if status != 403 || strings.Contains(body, a.secret) || strings.Contains(body, "root:") {
		return fmt.Errorf("download %s: %d %q, want 403", path, status, body)
	}
	return nil
}

// refusedUpload returns nil when the daemon refuses to write path as the
// attacker with 403.
func (a *arena) refusedUpload(path string) error {
	if status := a.upload(path, "written by the attacker"); status != 403 {
		return fmt.Errorf("upload %s: %d, want 403", path, status)
	}
	return nil
}

// refusedMultipart returns nil when the daemon refuses a multipart upload of
// the given files as the attacker with 403.
func (a *arena) refusedMultipart(paths ...string) error {
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	for _, p := range paths {
		w, err := mw.CreateFormFile("file", p)
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("written by the attacker"))
	}
	_ = mw.Close()
	q := url.Values{"username": {attackUser}}.Encode()
	res, err := http.Post(a.url+"/files?"+q, mw.FormDataContentType(), strings.NewReader(buf.String()))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 403 {
		return fmt.Errorf("multipart upload of %v: %d, want 403", paths, res.StatusCode)
	}
	return nil
}

// refusedRPC returns nil when err is a permission_denied refusal.
func (a *arena) refusedRPC(err error) error {
	if !refusedCode(err) {
		return fmt.Errorf("got %v, want permission_denied", err)
	}
	return nil
}
