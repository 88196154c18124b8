package insandbox

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/gen/envd/filesystem/filesystemconnect"
	"lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// daemon talks to one sandbox's daemon as one user, presenting its token.
type daemon struct {
	t     *testing.T
	base  string
	token string
	user  string
	http  *http.Client
	fs    filesystemconnect.FilesystemClient
	procs processconnect.ProcessClient
}

// newDaemon returns a client of st's daemon acting as user.
func newDaemon(t *testing.T, st engine.Status, user string) *daemon {
	d := &daemon{
		t: t, base: "http://" + st.Address + ":49983", token: st.Spec.AccessToken, user: user,
		http: &http.Client{Timeout: time.Minute},
	}
	auth := connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			d.sign(req.Header())
			return next(ctx, req)
		}
	}))
	d.fs = filesystemconnect.NewFilesystemClient(d.http, d.base, connect.WithProtoJSON(), auth)
	d.procs = processconnect.NewProcessClient(d.http, d.base)
	return d
}

// sign adds the token and the user to a request's headers.
func (d *daemon) sign(h http.Header) {
	h.Set("X-Access-Token", d.token)
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(d.user+":")))
}

// sh runs a bash command as the client's user and returns its output, failing
// the test unless it exits 0.
func (d *daemon) sh(cmd string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", cmd}}})
	d.sign(req.Header())
	stream, err := d.procs.Start(ctx, req)
	if err != nil {
		d.t.Fatalf("run %q as %s: %v", cmd, d.user, err)
	}
	defer stream.Close()
	var out strings.Builder
	code := -1
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		out.Write(ev.GetData().GetStdout())
		out.Write(ev.GetData().GetStderr())
		if end := ev.GetEnd(); end != nil {
			code = int(end.GetExitCode())
		}
	}
	if err := stream.Err(); err != nil || code != 0 {
		d.t.Fatalf("run %q as %s: exit %d, %v: %s", cmd, d.user, code, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// download fetches path and returns the status and body.
func (d *daemon) download(path string) (int, string) {
	d.t.Helper()
	req, err := http.NewRequest("GET", d.base+"/files?"+url.Values{"path": {path}, "username": {d.user}}.Encode(), nil)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("X-Access-Token", d.token)
	res, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("download %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// upload writes content to path and returns the status.
func (d *daemon) upload(path, content string) int {
	d.t.Helper()
	code, _ := d.uploadWith(path, content, nil)
	return code
}

// uploadWith writes content to path with extra headers and returns the status
// and the reply.
func (d *daemon) uploadWith(path, content string, hdr map[string]string) (int, string) {
	d.t.Helper()
	req, err := http.NewRequest("POST", d.base+"/files?"+url.Values{"path": {path}, "username": {d.user}}.Encode(), strings.NewReader(content))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("X-Access-Token", d.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("upload %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// rpcRequest returns a filesystem request (the interceptor signs it).
func rpcRequest[T any](msg *T) *connect.Request[T] { return connect.NewRequest(msg) }

// tally counts what the requests of one attack got.
type tally struct {
	allowed, refused, leaked int
	other                    map[string]int
}

// status counts a /files reply: 200 allowed, 403 refused.
func (c *tally) status(code int, leak bool) {
	switch {
	case leak:
		c.leaked++
	case code == 200:
		c.allowed++
	case code == 403:
		c.refused++
	default:
		c.note(fmt.Sprint(code))
	}
}

// rpc counts an RPC's reply: success allowed, permission_denied refused.
func (c *tally) rpc(err error, leak bool) {
	switch {
	case leak:
		c.leaked++
	case err == nil:
		c.allowed++
	case connect.CodeOf(err) == connect.CodePermissionDenied:
		c.refused++
	default:
		c.note(connect.CodeOf(err).String())
	}
}

// note counts an answer that is neither a success nor a refusal.
func (c *tally) note(kind string) {
	if c.other == nil {
		c.other = map[string]int{}
	}
	c.other[kind]++
}

// String describes the counts.
func (c tally) String() string {
	return fmt.Sprintf("%d allowed, %d refused, %d leaked, other %v", c.allowed, c.refused, c.leaked, c.other)
}
