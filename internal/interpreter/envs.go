package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ErrUnauthorized: envd refused the caller's access token.
var ErrUnauthorized = errors.New("the access token was refused")

// EnvdClient asks the sandbox's daemon for the sandbox's environment variables,
// with the caller's access token: the daemon's answer is also the token check.
type EnvdClient struct {
	// URL is the daemon's base URL, e.g. http://127.0.0.1:49983.
	URL  string
	HTTP *http.Client
}

// Connect opens a connection to the daemon (GET /health) that later calls
// reuse: done before the template's snapshot, it spares a sandbox's first
// execution a connection of its own, as long as the daemon keeps it open.
func (c *EnvdClient) Connect(ctx context.Context) error {
	_, _, err := c.get(ctx, "/health", "")
	if err != nil {
		return fmt.Errorf("envd connect: %w", err)
	}
	return nil
}

// Envs returns the sandbox's environment variables (GET /envs); ErrUnauthorized
// when the daemon refuses token.
func (c *EnvdClient) Envs(ctx context.Context, token string) (map[string]string, error) {
	status, body, err := c.get(ctx, "/envs", token)
	switch {
	case err != nil:
		return nil, fmt.Errorf("envd envs: %w", err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, fmt.Errorf("envd envs: %w", ErrUnauthorized)
	case status != http.StatusOK:
		return nil, fmt.Errorf("envd envs: status %d", status)
	}
	envs := map[string]string{}
	if err := json.Unmarshal(body, &envs); err != nil {
		return nil, fmt.Errorf("envd envs: %w", err)
	}
	return envs, nil
}

// get makes one GET of path with token ("" sends none) and returns the status
// and the body, read whole (up to 8 MiB).
func (c *EnvdClient) get(ctx context.Context, path, token string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}
