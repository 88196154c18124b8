package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Upload writes r to path in the sandbox as user ("" for the default user),
// streamed as it is read: parents are created, an existing file replaced.
// size is r's length when known (it is then sent as Content-Length), else -1.
func (d *Daemon) Upload(ctx context.Context, path, user string, r io.Reader, size int64) error {
	body := io.NopCloser(r)
	if size == 0 {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.filesURL(path, user), body)
	if err != nil {
		return fmt.Errorf("upload %s to sandbox %s: %w", path, d.id, err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("upload %s to sandbox %s: %w", path, d.id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload %s to sandbox %s: %w", path, d.id, decodeError(resp))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	return nil
}

// Download opens path in the sandbox as user ("" for the default user) and
// returns its content as a stream and its size (-1 when unknown). The
// caller closes the stream.
func (d *Daemon) Download(ctx context.Context, path, user string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.filesURL(path, user), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("download %s from sandbox %s: %w", path, d.id, err)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("download %s from sandbox %s: %w", path, d.id, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, 0, fmt.Errorf("download %s from sandbox %s: %w", path, d.id, decodeError(resp))
	}
	return resp.Body, resp.ContentLength, nil
}
