package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"lelantos.dev/lelantos/internal/saferoot"
)

// Files of the step form: the e2b SDK uploads the files of each COPY step as
// a tar archive (gzip-compressed by default) named by its own hash of them,
// and only when the builder does not have that archive yet. Archives are kept
// per scope (a team: another team's upload is never used, since the hash is
// the client's claim and not checked against the content), under
// <data>/templates/files/<scope>/<hash>; the build cache's cap covers them.

// scopeRE is what a files scope may be: a team ID.
var scopeRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,64}$`)

// ErrTooLarge: an upload is larger than BuilderOptions.MaxUploadBytes.
var ErrTooLarge = errors.New("upload too large")

func (b *Builder) filePath(scope, hash string) (string, error) {
	if !scopeRE.MatchString(scope) {
		return "", fmt.Errorf("%w: files scope %q", ErrInvalid, scope)
	}
	if !FilesHashRE.MatchString(hash) {
		return "", fmt.Errorf("%w: files hash %q must be 64 lower-case hex digits", ErrInvalid, hash)
	}
	return filepath.Join(b.dir, filesDir, scope, hash), nil
}

// HasFile reports whether the scope has an uploaded archive of this hash.
func (b *Builder) HasFile(scope, hash string) (bool, error) {
	p, err := b.filePath(scope, hash)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up upload %s: %w", hash, err)
	}
	return fi.Mode().IsRegular(), nil
}

// PutFile stores an uploaded archive: whole or not at all (a cut-off upload
// leaves nothing). Its content is checked when a build unpacks it. Past
// MaxUploadBytes it fails with ErrTooLarge.
func (b *Builder) PutFile(ctx context.Context, scope, hash string, r io.Reader) error {
	p, err := b.filePath(scope, hash)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("store upload %s: %w", hash, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".upload-")
	if err != nil {
		return fmt.Errorf("store upload %s: %w", hash, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, b.opts.MaxUploadBytes+1))
	if err != nil {
		return fmt.Errorf("store upload %s: %w", hash, err)
	}
	if n > b.opts.MaxUploadBytes {
		return fmt.Errorf("store upload %s: %w: more than %d bytes", hash, ErrTooLarge, b.opts.MaxUploadBytes)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store upload %s: %w", hash, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store upload %s: %w", hash, err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("store upload %s: %w", hash, err)
	}
	done = true
	return nil
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// uploadedContext unpacks the scope's archive hash into a work directory of
// the build (once per build) and returns it: the context of a COPY step.
func (b *Builder) uploadedContext(ctx context.Context, st *buildState, hash string) (string, error) {
	if dir, ok := st.b.files[hash]; ok {
		return dir, nil
	}
	p, err := b.filePath(st.req.FilesScope, hash)
	if err != nil {
		return "", err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: the files of hash %s were not uploaded (GET /templates/{templateID}/files/{hash} gives the upload link)", ErrInvalid, hash)
	}
	if err != nil {
		return "", fmt.Errorf("open upload %s: %w", hash, err)
	}
	defer f.Close()
	now := time.Now()
	_ = os.Chtimes(p, now, now) // last use, for PruneCache
	tmp, err := b.tempDir("files-")
	if err != nil {
		return "", err
	}
	st.b.cleanup = append(st.b.cleanup, func() { b.removeTemp(tmp) })
	dir := filepath.Join(tmp, "context")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	root, err := saferoot.Open(dir, saferoot.Beneath)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if _, err := root.Extract(ctx, f, ".", saferoot.ExtractOptions{Owner: &owner{}, Limits: b.opts.ExtractLimits}); err != nil {
		return "", fmt.Errorf("%w: unpack the files of hash %s: %w", ErrInvalid, hash, err)
	}
	st.b.files[hash] = dir
	return dir, nil
}
