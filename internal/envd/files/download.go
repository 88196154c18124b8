package files

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"lelantos.dev/lelantos/internal/envd/identity"
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
	if err := u.Check(path, identity.Read); err != nil {
		fail(w, fmt.Errorf("read %s: %w", path, err))
		return
	}
	f, err := os.Open(path)
	if err != nil {
		fail(w, fmt.Errorf("read %s: %w", path, err))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail(w, fmt.Errorf("read %s: %w", path, err))
		return
	}
	if st.IsDir() {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("path '%s' is a directory", path))
		return
	}
	w.Header().Set("Vary", "Accept-Encoding")
	plain := r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" || r.Method == http.MethodHead
	// Large files go as they are: compressing on the fly caps a transfer at what one
	// core compresses (tens of MB/s), far below the link to a sandbox, and large files
	// are mostly compressed already.
	if !plain && st.Size() <= gzipMaxSize && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/octet-stream")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		buf := make([]byte, copyBufferSize)
		if _, err := io.CopyBuffer(zw, struct{ io.Reader }{f}, buf); err != nil {
			h.log.Warn("gzip download cut short", "path", path, "err", err)
			return
		}
		_ = zw.Close()
		return
	}
	http.ServeContent(w, r, path, st.ModTime(), f)
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
