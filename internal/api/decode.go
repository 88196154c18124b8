package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// badRequest is a client error whose message names the field.
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

// badf is a 400 with a formatted message.
func badf(format string, args ...any) error {
	return &badRequest{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// writeBad answers a decoding error.
func writeBad(w http.ResponseWriter, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		writeError(w, br.status, br.msg)
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

// decodeBody reads an optional JSON object into v: an empty body or null
// leaves v as it is, unknown fields are ignored, and a field of the wrong
// type is a 400 naming it.
func (h *handler) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return h.decodeBodyLimit(w, r, v, h.maxBody)
}

// decodeBodyLimit is decodeBody with a body of at most limit bytes.
func (h *handler) decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &badRequest{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)}
		}
		return badf("read request body: %v", err)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badf("request body: unexpected data after the JSON object")
	}
	return nil
}

// jsonError explains a json decoding error, naming the field.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return badf("request body: must be a JSON object, got %s", typeErr.Value)
		}
		return badf("%s: expected %s, got %s", field, typeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return badf("request body: invalid JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badf("request body: truncated JSON")
	default:
		return badf("request body: %v", err)
	}
}

// typeName turns a Go kind into a JSON-ish type name.
func typeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case kind == "map" || kind == "struct":
		return "an object"
	case kind == "slice" || kind == "array":
		return "an array"
	default:
		return kind
	}
}

// queryInt parses optional integer query parameter name; ok is false when
// it is absent or empty.
func queryInt(r *http.Request, name string) (n int64, ok bool, err error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, false, nil
	}
	n, err = strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, badf("%s: must be an integer, got %q", name, s)
	}
	return n, true, nil
}
