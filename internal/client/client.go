// Package client talks to a Lelantos server the way the e2b clients do: the
// control plane's HTTP API with an API key (sandboxes, their logs and
// metrics, and any other route through Do), and a sandbox's in-sandbox
// daemon through the sandbox proxy (processes over Connect, files over
// /files), with the sandbox's access token.
//
// A Client is configured like the e2b clients: the API URL and key, and the
// sandbox proxy URL (E2B_SANDBOX_URL), with which every daemon request
// carries the E2b-Sandbox-Id and E2b-Sandbox-Port headers. Without a
// sandbox URL the daemon is reached at https://49983-<id>.<domain>.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Config says where a server is and how to authenticate.
type Config struct {
	// APIURL is the control plane's base URL, http:// or https://.
	APIURL string
	// APIKey authenticates API calls (the X-API-Key header).
	APIKey string
	// SandboxURL is the sandbox proxy's URL; requests to a sandbox's daemon
	// then name the sandbox in headers. Empty: the daemon's host name is
	// derived from the sandbox's domain.
	SandboxURL string
	// HTTPClient sends every request; a client without a timeout when nil
	// (process streams last as long as their process).
	HTTPClient *http.Client
}

// Client calls one server's API and its sandboxes' daemons. It is safe for
// concurrent use.
type Client struct {
	apiURL, apiKey, sandboxURL string
	hc                         *http.Client
}

// New checks cfg and returns a Client. The errors name the setting at fault.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.APIURL == "":
		return nil, errors.New("no API URL")
	case cfg.APIKey == "":
		return nil, errors.New("no API key")
	}
	if err := checkURL(cfg.APIURL); err != nil {
		return nil, fmt.Errorf("API URL %q: %w", cfg.APIURL, err)
	}
	if cfg.SandboxURL != "" {
		if err := checkURL(cfg.SandboxURL); err != nil {
			return nil, fmt.Errorf("sandbox URL %q: %w", cfg.SandboxURL, err)
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{apiURL: strings.TrimRight(cfg.APIURL, "/"), apiKey: cfg.APIKey,
		sandboxURL: strings.TrimRight(cfg.SandboxURL, "/"), hc: hc}, nil
}

// checkURL accepts http:// and https:// URLs.
func checkURL(u string) error {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return errors.New("must start with http:// or https://")
	}
	return nil
}

// maxAnswer bounds the JSON answers read into memory.
const maxAnswer = 64 << 20

// Do sends an API request and decodes a 2xx JSON answer into out (when out
// is not nil). A body is sent as JSON. A non-2xx answer is an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, out any) error {
	_, err := c.doHeader(ctx, method, path, body, out)
	return err
}

// Send is Do with a body of the given media type (a tar archive, say), sent
// as it is read.
func (c *Client) Send(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	_, err := c.send(ctx, method, path, contentType, body, out)
	return err
}

// doHeader is Do that also returns the answer's headers.
func (c *Client) doHeader(ctx context.Context, method, path string, body io.Reader, out any) (http.Header, error) {
	return c.send(ctx, method, path, "application/json", body, out)
}

// send makes a request with a body of type contentType (when body is not
// nil) and reads the answer as Do says, returning its headers.
func (c *Client) send(ctx context.Context, method, path, contentType string, body io.Reader, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.apiURL+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("X-API-Key", c.apiKey)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		return resp.Header, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
	}
	return resp.Header, nil
}

// postJSON sends v as the JSON body of a POST and decodes the answer into out.
func (c *Client) postJSON(ctx context.Context, path string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("POST %s: encode the body: %w", path, err)
	}
	return c.Do(ctx, http.MethodPost, path, bytes.NewReader(body), out)
}
