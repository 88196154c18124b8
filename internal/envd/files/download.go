package files

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// copyBufferSize is the fixed buffer every transfer streams through.
const copyBufferSize = 64 << 10

// download streams the file named by the path query.
func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	u, ok := h.caller(w, r, OpRead)
	if !ok {
		return
	}
	path, err := u.Abs(r.URL.Query().Get("path"), h.settings.DefaultWorkdir())
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	var f *os.File
	if err := u.Do(func() error {
		var err error
		f, err = openRegular(path, os.O_RDONLY, 0)
		return err
	}); err != nil {
		if errors.Is(err, syscall.EISDIR) {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("path '%s' is a directory", path))
			return
		}
		fail(w, fmt.Errorf("read %s: %w", path, err))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail(w, fmt.Errorf("read %s: %w", path, err))
		return
	}
	w.Header().Set("Vary", "Accept-Encoding")
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	switch {
	case st.Size() == 0:
		// Empty, or a kernel pseudo-file (/proc, /sys) whose size shows only as it
		// is read and which cannot seek to its end: sent as read, without ranges.
		h.stream(w, r, f, path, gz)
	case r.Header.Get("Range") == "" && r.Header.Get("If-Range") == "" && r.Method != http.MethodHead && st.Size() <= gzipMaxSize && gz:
		// Large files go as they are: compressing on the fly caps a transfer at what
		// one core compresses (tens of MB/s), far below the link to a sandbox, and
		// large files are mostly compressed already.
		h.stream(w, r, f, path, true)
	default:
		http.ServeContent(w, r, path, st.ModTime(), f)
	}
}

// stream sends f whole, gzip-encoded when gz is set, without a length (HEAD
// gets the headers of the plain body).
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, f *os.File, path string, gz bool) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	if gz {
		w.Header().Set("Content-Encoding", "gzip")
	}
	var out io.Writer = w
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = zw
	}
	buf := make([]byte, copyBufferSize)
	if _, err := io.CopyBuffer(out, struct{ io.Reader }{f}, buf); err != nil {
		h.log.Warn("download cut short", "path", path, "err", err)
		return
	}
	if zw != nil {
		_ = zw.Close()
	}
}

// gzipMaxSize is the largest file a download compresses.
const gzipMaxSize = 16 << 20

// acceptsGzip reports whether an Accept-Encoding value allows gzip (q > 0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
	}
	return false
}
