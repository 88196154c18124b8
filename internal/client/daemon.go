package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"connectrpc.com/connect"

	fspb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
	"lelantos.dev/lelantos/internal/gen/envd/filesystem/filesystemconnect"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// DaemonPort is the in-sandbox daemon's port.
const DaemonPort = 49983

// Headers that route a request through the sandbox proxy and authorize it
// at the daemon.
const (
	HeaderSandboxID   = "E2b-Sandbox-Id"
	HeaderSandboxPort = "E2b-Sandbox-Port"
	HeaderAccessToken = "X-Access-Token"
)

// Daemon is one sandbox's in-sandbox daemon, reached through the sandbox
// proxy. It is safe for concurrent use.
type Daemon struct {
	id      string
	baseURL string
	hc      *http.Client
	proc    processconnect.ProcessClient
	fs      filesystemconnect.FilesystemClient
}

// Daemon returns a handle on the daemon of sandbox id, authorized with its
// access token (from create, resume or Get). domain is the sandbox's domain,
// used only when the Client has no sandbox URL.
func (c *Client) Daemon(id, accessToken, domain string) (*Daemon, error) {
	headers := http.Header{}
	base := c.sandboxURL
	switch {
	case base != "":
		headers.Set(HeaderSandboxID, id)
		headers.Set(HeaderSandboxPort, fmt.Sprint(DaemonPort))
	case domain != "":
		base = fmt.Sprintf("https://%d-%s.%s", DaemonPort, id, domain)
	default:
		return nil, errors.New("no sandbox URL, and the server gives sandboxes no domain")
	}
	if accessToken != "" {
		headers.Set(HeaderAccessToken, accessToken)
	}
	rt := c.hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc := &http.Client{Transport: headerTransport{next: rt, headers: headers}}
	return &Daemon{
		id:      id,
		baseURL: base,
		hc:      hc,
		proc:    processconnect.NewProcessClient(hc, base),
		fs:      filesystemconnect.NewFilesystemClient(hc, base),
	}, nil
}

// SandboxID is the sandbox the daemon runs in.
func (d *Daemon) SandboxID() string { return d.id }

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	next    http.RoundTripper
	headers http.Header
}

// RoundTrip sends a copy of req carrying the headers.
func (t headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for k, v := range t.headers {
		r.Header[k] = v
	}
	return t.next.RoundTrip(r)
}

// userAuthorization is the Authorization header selecting the Linux user a
// daemon call runs as: Basic base64("<user>:").
func userAuthorization(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))
}

// withUser sets the user of a Connect request; "" keeps the sandbox's default.
func withUser[T any](req *connect.Request[T], user string) *connect.Request[T] {
	if user != "" {
		req.Header().Set("Authorization", userAuthorization(user))
	}
	return req
}

// IsDir reports whether path is a directory in the sandbox (false when it
// does not exist), as user ("" for the default user).
func (d *Daemon) IsDir(ctx context.Context, path, user string) (bool, error) {
	resp, err := d.fs.Stat(ctx, withUser(connect.NewRequest(&fspb.StatRequest{Path: path}), user))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return false, nil
	}
	if err != nil {
		return false, d.rpcError("stat "+path, err)
	}
	return resp.Msg.GetEntry().GetType() == fspb.FileType_FILE_TYPE_DIRECTORY, nil
}

// rpcError wraps a failed daemon call with the operation. When the call
// could not reach the daemon and the proxy says the sandbox is not there
// (the e2b clients' isRunning check: a 502 from GET /health), the error is
// an *APIError matching ErrNotFound. The daemon's not_found (an unknown
// process or path) also matches ErrNotFound; unauthenticated matches
// ErrUnauthorized and failed_precondition ErrPrecondition.
func (d *Daemon) rpcError(op string, err error) error {
	if connect.CodeOf(err) == connect.CodeUnavailable && d.gone() {
		return &APIError{Status: http.StatusBadGateway, SandboxID: d.id,
			Message: fmt.Sprintf("sandbox %q not found (it is not running)", d.id)}
	}
	e := &daemonError{op: op + " in sandbox " + d.id, err: err}
	switch connect.CodeOf(err) {
	case connect.CodeNotFound:
		e.kind = ErrNotFound
	case connect.CodeUnauthenticated:
		e.kind = ErrUnauthorized
	case connect.CodeFailedPrecondition:
		e.kind = ErrPrecondition
	}
	return e
}

// goneTimeout bounds the health probe of gone.
const goneTimeout = 5 * time.Second

// gone reports whether the proxy answers GET /health for the sandbox with
// its "sandbox not found" 502.
func (d *Daemon) gone() bool {
	ctx, cancel := context.WithTimeout(context.Background(), goneTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.baseURL+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		return false
	}
	return errors.Is(decodeError(resp), ErrNotFound)
}

// daemonError is a failed daemon call: the operation, the kind of failure
// (nil when none applies) and the cause.
type daemonError struct {
	op   string
	kind error
	err  error
}

// Error names the operation and the cause.
func (e *daemonError) Error() string { return e.op + ": " + e.err.Error() }

// Unwrap exposes the kind and the cause to errors.Is and errors.As.
func (e *daemonError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// filesURL is the /files URL for path as user.
func (d *Daemon) filesURL(path, user string) string {
	q := url.Values{"path": {path}}
	if user != "" {
		q.Set("username", user)
	}
	return d.baseURL + "/files?" + q.Encode()
}
