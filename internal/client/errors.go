package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Kinds of failure callers branch on with errors.Is.
var (
	// ErrNotFound: the sandbox (or other object) is unknown, killed or gone.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request does not fit the object's state (pausing a
	// paused sandbox, resuming a running one).
	ErrConflict = errors.New("conflict")
	// ErrUnauthorized: the API key or access token was refused.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrPaused: the sandbox is paused, so its daemon cannot be reached.
	ErrPaused = errors.New("sandbox is paused")
	// ErrPrecondition: a daemon call does not fit the process's state (it
	// has exited, its stdin is closed, it has no terminal).
	ErrPrecondition = errors.New("failed precondition")
)

// APIError is a non-2xx answer of the API, the proxy or a daemon. Message
// is the server's own message when it sent one.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the answer's message, or its text when it was not JSON.
	Message string
	// SandboxID is set on the proxy's answers about a sandbox.
	SandboxID string
}

// Error returns the server's message, or the status when there is none.
func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// Is matches the kinds of failure: ErrNotFound for 404 and for the proxy's
// 502 about a sandbox it cannot find, ErrConflict for 409 and
// ErrUnauthorized for 401.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound || e.Status == http.StatusBadGateway && e.SandboxID != ""
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	}
	return false
}

// decodeError reads a non-2xx answer: {"code","message"} from the API and
// the daemon, {"sandboxId","message","code"} from the proxy, else text.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	var body struct {
		Message   string `json:"message"`
		SandboxID string `json:"sandboxId"`
	}
	if json.Unmarshal(data, &body) == nil && body.Message != "" {
		e.Message, e.SandboxID = body.Message, body.SandboxID
		return e
	}
	if text := bytes.TrimSpace(data); len(text) > 0 {
		if len(text) > 200 {
			text = append(text[:200:200], "..."...)
		}
		e.Message = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, text)
	}
	return e
}
