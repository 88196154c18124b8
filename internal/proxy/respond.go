package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Messages of the 502 answers. Clients compare the status and code, people
// read the message; the wording follows E2B's proxy.
const (
	msgSandboxNotFound = "The sandbox was not found"
	msgPortNotOpen     = "The sandbox is running but port is not open"
	msgUnreachable     = "The sandbox is not reachable"
	msgNoAnswer        = "The sandbox port did not answer"
)

// apiError is the error body of the control plane: code equals the status.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// sandboxNotFound is the 502 body for an unknown, killed, timed-out or
// paused sandbox. Field order matches what clients are used to seeing.
type sandboxNotFound struct {
	SandboxID string `json:"sandboxId"`
	Message   string `json:"message"`
	Code      int    `json:"code"`
}

// portError is the 502 body for a sandbox that is known but whose port
// could not be reached.
type portError struct {
	SandboxID string `json:"sandboxId"`
	Message   string `json:"message"`
	Port      int    `json:"port"`
	Code      int    `json:"code"`
}

// writeJSON sends v as a JSON body with the given status. The body is
// marshalled first so that Content-Length can be set: clients must never see
// an empty chunked error body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// The bodies above always marshal; keep a valid answer regardless.
		body = []byte(`{"code":500,"message":"internal error"}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError sends {"code": status, "message": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Code: status, Message: msg})
}
