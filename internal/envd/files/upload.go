package files

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/envd/fsmeta"
	"lelantos.dev/lelantos/internal/envd/identity"
)

// Written describes one uploaded file in the POST /files reply.
type Written struct {
	Path     string            `json:"path"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// errBody marks a failure to read the request body (the client's fault: 400).
type errBody struct{ err error }

// Error describes the body failure.
func (e errBody) Error() string { return "read request body: " + e.err.Error() }

// Unwrap returns the reader's error.
func (e errBody) Unwrap() error { return e.err }

// bodyReader tags errors of the underlying reader as errBody.
type bodyReader struct{ r io.Reader }

// Read reads from the body, tagging its failures.
func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = errBody{err}
	}
	return n, err
}

// upload writes the files of a multipart or raw body.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	u, ok := h.caller(w, r, OpWrite)
	if !ok {
		return
	}
	var body io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("decompress request body: %w", err))
			return
		}
		defer zr.Close()
		body = zr
	default:
		WriteError(w, http.StatusBadRequest, fmt.Errorf("unsupported Content-Encoding %q", enc))
		return
	}
	body = bodyReader{body}
	md := fsmeta.FromHeaders(r.Header)
	if err := fsmeta.Validate(md); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	pathParam := r.URL.Query().Get("path")
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("parse Content-Type: %w", err))
		return
	}
	var results []Written
	switch {
	case mediaType == "application/octet-stream":
		if pathParam == "" {
			WriteError(w, http.StatusBadRequest, errors.New("the path query parameter is required for a raw upload"))
			return
		}
		res, err := h.writeOne(u, pathParam, body, md)
		if err != nil {
			h.failUpload(w, err)
			return
		}
		results = append(results, res)
	case strings.HasPrefix(mediaType, "multipart/"):
		if params["boundary"] == "" {
			WriteError(w, http.StatusBadRequest, errors.New("multipart body without a boundary"))
			return
		}
		results, err = h.writeParts(u, multipart.NewReader(body, params["boundary"]), pathParam, md)
		if err != nil {
			h.failUpload(w, err)
			return
		}
	default:
		WriteError(w, http.StatusBadRequest, fmt.Errorf("unsupported Content-Type %q: use multipart/form-data or application/octet-stream", mediaType))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(results)
}

// failUpload answers an upload error: a bad body is the client's (400).
func (h *Handler) failUpload(w http.ResponseWriter, err error) {
	var be errBody
	if errors.As(err, &be) {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	fail(w, err)
}

// writeParts writes every part named "file"; each part's filename is its full
// target path, unless the path query names the (single) target.
func (h *Handler) writeParts(u identity.User, mr *multipart.Reader, pathParam string, md map[string]string) ([]Written, error) {
	var results []Written
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errBody{fmt.Errorf("malformed multipart body: %w", err)}
		}
		if part.FormName() != "file" {
			continue
		}
		name := pathParam
		if name == "" {
			name = partFilename(part)
		}
		if name == "" {
			return nil, errBody{errors.New("a file part has no filename (the target path)")}
		}
		target, err := u.Abs(name, h.settings.DefaultWorkdir())
		if err != nil {
			return nil, err
		}
		if seen[target] {
			return nil, errBody{fmt.Errorf("several parts target %s; send one per path", target)}
		}
		seen[target] = true
		res, err := h.writeOne(u, name, bodyReader{part}, md)
		if err != nil {
			return nil, err
		}
		results = append(results, res)
	}
	if len(results) == 0 {
		return nil, errBody{errors.New("the request holds no part named \"file\"")}
	}
	return results, nil
}

// partFilename returns the filename parameter of a part as sent, directories
// included (multipart.Part.FileName keeps only the base name).
func partFilename(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// writeOne streams src into the file name resolves to for u and sets its
// metadata. The parents are made, the file opened (created owned by u, or
// truncated) and its metadata set with u's credentials; the bytes then flow
// through the open file. The file's metadata becomes md: an overwrite without
// metadata clears what an earlier write set, as E2B's daemon does.
//
// Missing parents are made as E2B's daemon makes them, owned by u, but only
// where the kernel lets u make them. E2B's daemon, running as root, also makes
// parents inside directories u may not write (a missing /etc/sudoers.d under
// /etc), which would let u plant files that look like root's configuration;
// here such a write is refused (403), deliberately unlike E2B.
func (h *Handler) writeOne(u identity.User, name string, src io.Reader, md map[string]string) (Written, error) {
	target, err := u.Abs(name, h.settings.DefaultWorkdir())
	if err != nil {
		return Written{}, err
	}
	op := "write " + target
	var f *os.File
	var stored map[string]string
	err = u.Do(func() error {
		if err := identity.MkdirAll(filepath.Dir(target)); err != nil {
			return err
		}
		var err error
		if f, err = openRegular(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			return err
		}
		if err := fsmeta.ReplaceFile(f, md); err != nil && !errors.Is(err, unix.ENOTSUP) {
			// A filesystem that keeps no attributes (ENOTSUP) stores the bytes
			// without metadata, as E2B's daemon does.
			_ = f.Close()
			return err
		}
		stored, _ = fsmeta.ReadFile(f)
		return nil
	})
	if err != nil {
		return Written{}, fmt.Errorf("%s: %w", op, err)
	}
	buf := make([]byte, copyBufferSize)
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{src}, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Written{}, fmt.Errorf("%s: %w", op, err)
	}
	res := Written{Path: target, Name: filepath.Base(target), Type: "file"}
	if len(stored) > 0 {
		res.Metadata = stored
	}
	return res, nil
}
