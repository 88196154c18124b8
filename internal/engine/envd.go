package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// EnvdPort is the port of the daemon inside every sandbox.
const EnvdPort = 49983

// envdClient talks to the daemons inside this node's sandboxes.
type envdClient struct {
	http *http.Client
	// steps times waits and /init calls (see observe).
	steps *steps
}

func newEnvdClient() *envdClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &envdClient{http: &http.Client{Transport: tr}}
}

func envdURL(addr, path string) string {
	return "http://" + net.JoinHostPort(addr, strconv.Itoa(EnvdPort)) + path
}

// pollHealthy polls the daemon's /health until it answers 204 or ctx ends.
func (c *envdClient) pollHealthy(ctx context.Context, addr string) error {
	delay := 2 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, envdURL(addr, "/health"), nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon at %s not healthy: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// initRequest is the body of the daemon's POST /init.
type initRequest struct {
	EnvVars        map[string]string `json:"envVars,omitempty"`
	AccessToken    string            `json:"accessToken,omitempty"`
	DefaultUser    string            `json:"defaultUser,omitempty"`
	DefaultWorkdir string            `json:"defaultWorkdir,omitempty"`
	Timestamp      time.Time         `json:"timestamp"`
}

// init gives the daemon the sandbox's token, environment and defaults.
func (c *envdClient) init(ctx context.Context, addr string, s Spec) error {
	body, err := json.Marshal(initRequest{
		EnvVars: s.EnvVars, AccessToken: s.AccessToken,
		DefaultUser: s.DefaultUser, DefaultWorkdir: s.DefaultWorkdir, Timestamp: time.Now().UTC(),
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, envdURL(addr, "/init"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.AccessToken != "" {
		req.Header.Set("X-Access-Token", s.AccessToken)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("init daemon at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("init daemon at %s: %s: %s", addr, resp.Status, b)
	}
	return nil
}

// envdMetrics is the daemon's GET /metrics: the sandbox's own view of itself.
type envdMetrics struct {
	Timestamp  int64   `json:"ts"`
	CPUCount   int     `json:"cpu_count"`
	CPUUsedPct float64 `json:"cpu_used_pct"`
	MemTotal   int64   `json:"mem_total"`
	MemUsed    int64   `json:"mem_used"`
	MemCache   int64   `json:"mem_cache"`
	DiskUsed   int64   `json:"disk_used"`
	DiskTotal  int64   `json:"disk_total"`
}

func (c *envdClient) metrics(ctx context.Context, addr, token string) (envdMetrics, error) {
	var m envdMetrics
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, envdURL(addr, "/metrics"), nil)
	if err != nil {
		return m, err
	}
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return m, fmt.Errorf("daemon metrics at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("daemon metrics at %s: %s", addr, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&m); err != nil {
		return m, fmt.Errorf("daemon metrics at %s: %w", addr, err)
	}
	return m, nil
}

// startCommand starts cmd in the sandbox through the daemon as a background process
// tagged "start-cmd", running as the default user, and returns once it has a pid:
// the daemon keeps it running after this call's stream ends. ctx bounds that wait
// only: a request's deadline reaches the daemon, which kills the process when it
// passes, so the request carries none.
func (c *envdClient) startCommand(ctx context.Context, addr, token, cmd string) (uint32, error) {
	client := processconnect.NewProcessClient(c.http, envdURL(addr, ""))
	tag := "start-cmd"
	req := connect.NewRequest(&process.StartRequest{
		Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}},
		Tag:     &tag,
	})
	if token != "" {
		req.Header().Set("X-Access-Token", token)
	}
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel() // ends our stream only; the process goes on
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	stream, err := client.Start(reqCtx, req)
	if err != nil {
		return 0, fmt.Errorf("start command %q: %w", cmd, err)
	}
	defer stream.Close()
	for stream.Receive() {
		if start := stream.Msg().GetEvent().GetStart(); start != nil {
			return start.GetPid(), nil
		}
	}
	return 0, fmt.Errorf("start command %q: stream ended without a pid: %v", cmd, stream.Err())
}

// run runs argv in the sandbox as user through the daemon, before its init
// (so without a token), and waits for it to end; a non-zero exit is an error.
func (c *envdClient) run(ctx context.Context, addr, user string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("run: no command")
	}
	client := processconnect.NewProcessClient(c.http, envdURL(addr, ""))
	req := connect.NewRequest(&process.StartRequest{
		Process: &process.ProcessConfig{Cmd: argv[0], Args: argv[1:]},
	})
	// The clients' way of naming the user: basic auth with an empty password.
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	stream, err := client.Start(ctx, req)
	if err != nil {
		return fmt.Errorf("run %q: %w", argv, err)
	}
	defer stream.Close()
	for stream.Receive() {
		if end := stream.Msg().GetEvent().GetEnd(); end != nil {
			if !end.GetExited() || end.GetExitCode() != 0 {
				return fmt.Errorf("run %q: ended with %s", argv, end.GetStatus())
			}
			return nil
		}
	}
	return fmt.Errorf("run %q: stream ended without an exit: %v", argv, stream.Err())
}

// installEnvd copies the daemon binary (and the interpreter binary, when set)
// into DataDir/envd/<hash>/ once and returns that directory: sandboxes keep the
// binaries they started with across pauses and upgrades, and a checkpoint always
// finds the files it was taken with. The hash covers both binaries.
func installEnvd(dataDir, src, interpreter string) (string, error) {
	bins := [][2]string{{"envd", src}}
	if interpreter != "" {
		bins = append(bins, [2]string{"interpreter", interpreter})
	}
	h := sha256.New()
	for i, b := range bins {
		if i > 0 {
			fmt.Fprintf(h, "\x00%s\x00", b[0])
		}
		if err := hashFile(h, b[1]); err != nil {
			return "", fmt.Errorf("install envd: %w", err)
		}
	}
	dir := filepath.Join(dataDir, "envd", hex.EncodeToString(h.Sum(nil))[:16])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	for _, b := range bins {
		if err := installBinary(b[1], filepath.Join(dir, b[0])); err != nil {
			return "", fmt.Errorf("install envd: %w", err)
		}
	}
	return dir, nil
}

// hashFile writes the file at path into h.
func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}

// installBinary copies src to dst (mode 0755) unless dst exists, through a
// temporary file so that dst is never partial.
func installBinary(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, f)
	if err := errors.Join(cerr, out.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
