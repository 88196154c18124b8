package filesystem

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/gen/envd/filesystem/filesystemconnect"
)

// fixedDefaults is a Defaults with fixed answers.
type fixedDefaults struct{ user, workdir string }

func (d fixedDefaults) DefaultUser() string    { return d.user }
func (d fixedDefaults) DefaultWorkdir() string { return d.workdir }

// newClient serves a Service and returns a client for it.
func newClient(t *testing.T, d Defaults) filesystemconnect.FilesystemClient {
	t.Helper()
	svc := NewService(d, nil)
	mux := http.NewServeMux()
	mux.Handle(svc.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		svc.Close()
		srv.Close()
	})
	return filesystemconnect.NewFilesystemClient(srv.Client(), srv.URL, connect.WithProtoJSON())
}

// as returns a request for msg sent as user ("" for the default).
func as[T any](user string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if user != "" {
		req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	}
	return req
}

// codeOf returns the Connect code of err (0 when none).
func codeOf(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

// tree creates files (content = name) and directories (trailing /) under root.
func tree(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, p)
		if p[len(p)-1] == '/' {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// openDir returns a temp dir every user may traverse.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
