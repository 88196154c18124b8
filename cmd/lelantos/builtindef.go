package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// baseCompleteMarker is the file scripts/build-base.sh writes last into the
// base template's tree.
const baseCompleteMarker = ".lelantos-complete"

// treeHash hashes what t's built tree (the result of its Dockerfile's steps,
// before the start command's snapshot) depends on: the definition's files, the
// host's local CA certificates (copied into the tree), and the base template's
// tree it starts FROM. The sizes, the start and ready commands, and envd and the
// interpreter (bind-mounted at /lelantos, never copied into the tree) are not
// part of it: they change the snapshot only. The version string changes when the
// way trees are built does.
func (b *builtins) treeHash(t builtinTemplate) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "lelantos-builtin-tree-v1\x00%s\x00", t.name)
	err := fs.WalkDir(b.defs.fsys, t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(b.defs.fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "file\x00%s\x00%d\x00", p, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash template %s: %w", t.name, err)
	}
	cas, err := localCAs(b.caDir)
	if err != nil {
		return "", fmt.Errorf("hash template %s: local CA certificates: %w", t.name, err)
	}
	for _, p := range cas {
		if err := hashInto(h, "ca", p); err != nil {
			return "", fmt.Errorf("hash template %s: %w", t.name, err)
		}
	}
	base, err := baseIdentity(b.baseRootfs)
	if err != nil {
		return "", fmt.Errorf("hash template %s: %w", t.name, err)
	}
	fmt.Fprintf(h, "base\x00%s\x00", base)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// definition hashes what t's version in this data directory depends on: its
// tree (treeHash), its sizes and commands, and the binaries its snapshot runs.
func (b *builtins) definition(t builtinTemplate, tree string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "lelantos-builtin-v2\x00%s\x00%d/%d/%d\x00%s\x00%s\x00", tree, t.cpu, t.memoryMB, t.diskMB, t.startCmd, t.readyCmd)
	for _, p := range []string{b.envd, b.interpreter} {
		if p != "" {
			if err := hashInto(h, "binary", p); err != nil {
				return "", fmt.Errorf("hash template %s: %w", t.name, err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// baseIdentity names the base template's tree as it is now: its path (whose
// name scripts/build-base.sh makes from the hash of its recipe) and the inode
// and time of its completion marker, which a rebuild at the same path
// replaces. A tree without the marker is named by its top directory's.
func baseIdentity(root string) (string, error) {
	if root == "" {
		return "", errors.New("no base template tree")
	}
	fi, err := os.Stat(filepath.Join(root, baseCompleteMarker))
	if errors.Is(err, fs.ErrNotExist) {
		fi, err = os.Stat(root)
	}
	if err != nil {
		return "", fmt.Errorf("base template tree: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("base template tree %s: no inode", root)
	}
	return fmt.Sprintf("%s\x00%s\x00%d\x00%d", filepath.Clean(root), fi.Name(), st.Ino, fi.ModTime().UnixNano()), nil
}

func hashInto(h hash.Hash, kind, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", kind, filepath.Base(p), fi.Size())
	_, err = io.Copy(h, f)
	return err
}

// localCAs lists the locally added CA certificates in dir, sorted.
func localCAs(dir string) ([]string, error) {
	ms, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ms {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// writeDefinition writes t's files, and the local CA certificates of caDir
// into local-ca/, into dir: t's build context.
func writeDefinition(fsys fs.FS, t builtinTemplate, caDir, dir string) error {
	err := fs.WalkDir(fsys, t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, t.dir), "/")
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return err
	}
	cas, err := localCAs(caDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "local-ca"), 0o755); err != nil {
		return err
	}
	for _, p := range cas {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "local-ca", path.Base(p)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
