package volume

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"golang.org/x/sys/unix"

	"lelantos.dev/lelantos/internal/saferoot"
)

// Write makes name a regular file holding what r yields, owned and moded as a says.
// The parent directory must exist (else ErrNotFound). An existing file is replaced
// only with force, atomically (readers see the old file or the new one); without it,
// and for a directory in any case, it is ErrExists. A full volume is ErrNoSpace,
// and leaves nothing of the new file behind.
func (t *Tree) Write(name string, r io.Reader, a Attrs, force bool) (Entry, error) {
	p, err := clean(name)
	if err != nil {
		return Entry{}, err
	}
	if p == "/" {
		return Entry{}, fmt.Errorf("write %s: the volume's top is a directory: %w", p, ErrExists)
	}
	if err := t.parentDir(p); err != nil {
		return Entry{}, fmt.Errorf("write %s: %w", p, err)
	}
	if err := t.noDir(p); err != nil {
		return Entry{}, fmt.Errorf("write %s: %w", p, err)
	}
	dst := p
	if force {
		// Written beside it, then renamed over it: rename replaces a link itself,
		// never what it points at.
		dst = path.Join(path.Dir(p), ".lelantos-upload-"+randomName())
	}
	f, err := t.root.Create(dst, 0o600)
	if err != nil {
		return Entry{}, fmt.Errorf("write %s: %w", p, mapErr(err))
	}
	_, werr := io.Copy(f, r)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = t.setAttrs(dst, a, defaultFileMode)
	}
	if werr == nil && force {
		if werr = t.root.Rename(dst, p); errors.Is(werr, unix.EISDIR) || errors.Is(werr, unix.ENOTEMPTY) || errors.Is(werr, unix.EEXIST) {
			werr = fmt.Errorf("a directory is there: %w", ErrExists)
		}
	}
	if werr != nil {
		_ = t.root.Remove(dst)
		return Entry{}, fmt.Errorf("write %s: %w", p, mapErr(werr))
	}
	e, err := t.entry(p)
	if err != nil {
		return Entry{}, fmt.Errorf("write %s: %w", p, err)
	}
	return e, nil
}

// parentDir checks that the parent of the cleaned path p is a directory.
func (t *Tree) parentDir(p string) error {
	fi, err := t.root.Stat(path.Dir(p))
	if err != nil {
		return mapErr(err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: %w", path.Dir(p), ErrNotFound)
	}
	return nil
}

// noDir refuses a cleaned path p that is a directory (following a final link).
func (t *Tree) noDir(p string) error {
	if fi, err := t.root.Stat(p); err == nil && fi.IsDir() {
		return fmt.Errorf("a directory is there: %w", ErrExists)
	}
	return nil
}

// MakeDir makes the directory name, owned and moded as a says. Without force its
// parent must exist (else ErrNotFound) and it must not (else ErrExists); with force
// missing parents are made too (with the same owner and mode) and an existing
// directory is described as it is.
func (t *Tree) MakeDir(name string, a Attrs, force bool) (Entry, error) {
	p, err := clean(name)
	if err != nil {
		return Entry{}, err
	}
	if e, err := t.entry(p); err == nil {
		if !force || e.Type != TypeDirectory {
			return Entry{}, fmt.Errorf("make directory %s: %w", p, ErrExists)
		}
		return e, nil
	}
	if force {
		mode := uint32(defaultDirMode)
		if a.Mode != nil {
			mode = *a.Mode
		}
		owner := saferoot.Owner{UID: idOr(a.UID, 0), GID: idOr(a.GID, 0)}
		if err := t.root.MkdirAll(path.Dir(p), fs.FileMode(mode&0o777), owner); err != nil {
			return Entry{}, fmt.Errorf("make directory %s: %w", p, mapErr(err))
		}
	} else if err := t.parentDir(p); err != nil {
		return Entry{}, fmt.Errorf("make directory %s: %w", p, err)
	}
	if err := t.root.Mkdir(p, 0o700); err != nil {
		return Entry{}, fmt.Errorf("make directory %s: %w", p, mapErr(err))
	}
	if err := t.setAttrs(p, a, defaultDirMode); err != nil {
		_ = t.root.Remove(p)
		return Entry{}, fmt.Errorf("make directory %s: %w", p, mapErr(err))
	}
	e, err := t.entry(p)
	if err != nil {
		return Entry{}, fmt.Errorf("make directory %s: %w", p, err)
	}
	return e, nil
}

// Remove removes the entry name and, for a directory, everything below it; a link
// is removed, never followed. A missing entry, and the volume's top, are ErrNotFound.
func (t *Tree) Remove(name string) error {
	p, err := clean(name)
	if err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("remove %s: the volume's top cannot be removed: %w", p, ErrNotFound)
	}
	if _, err := t.root.Lstat(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, mapErr(err))
	}
	if err := t.root.RemoveAll(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, mapErr(err))
	}
	return nil
}

// SetAttrs changes the owner and mode of the entry name (of a link itself, whose
// mode cannot change: ErrInvalid) and describes it.
func (t *Tree) SetAttrs(name string, a Attrs) (Entry, error) {
	p, err := clean(name)
	if err != nil {
		return Entry{}, err
	}
	e, err := t.entry(p)
	if err != nil {
		return Entry{}, fmt.Errorf("update %s: %w", p, err)
	}
	if e.Type == TypeSymlink && a.Mode != nil {
		return Entry{}, fmt.Errorf("update %s: a symbolic link has no mode of its own: %w", p, ErrInvalid)
	}
	if err := t.chown(p, a); err != nil {
		return Entry{}, fmt.Errorf("update %s: %w", p, mapErr(err))
	}
	if a.Mode != nil {
		if err := t.root.Chmod(p, fs.FileMode(*a.Mode&0o7777)); err != nil {
			return Entry{}, fmt.Errorf("update %s: %w", p, mapErr(err))
		}
	}
	if e, err = t.entry(p); err != nil {
		return Entry{}, fmt.Errorf("update %s: %w", p, err)
	}
	return e, nil
}

// setAttrs gives the new entry p the owner and mode of a, the mode def by default.
// The mode is set after the owner, as chown clears set-id bits.
func (t *Tree) setAttrs(p string, a Attrs, def uint32) error {
	if err := t.chown(p, a); err != nil {
		return err
	}
	mode := def
	if a.Mode != nil {
		mode = *a.Mode
	}
	return t.root.Chmod(p, fs.FileMode(mode&0o7777))
}

// chown sets the ids a gives of p, keeping the others.
func (t *Tree) chown(p string, a Attrs) error {
	if a.UID == nil && a.GID == nil {
		return nil
	}
	return t.root.Lchown(p, idOr(a.UID, -1), idOr(a.GID, -1))
}

// idOr is *id, or def when id is nil.
func idOr(id *uint32, def int) int {
	if id == nil {
		return def
	}
	return int(*id)
}

// randomName returns 16 random hex digits.
func randomName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
