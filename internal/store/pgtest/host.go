package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binDir finds the directory of the server binaries: $LELANTOS_TEST_PG_BIN,
// the directory of a postgres binary in PATH, or Debian's
// /usr/lib/postgresql/<version>/bin of the newest version.
func binDir() (string, error) {
	if d := os.Getenv("LELANTOS_TEST_PG_BIN"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoServer
}

// dirPrefix starts the names of the clusters' temporary directories.
const dirPrefix = "lelantos-pg-"

// staleAge is how old the directory of a cluster without a server must be
// to be another test binary's leftover rather than one being made.
const staleAge = 10 * time.Minute

// removeStale removes the clusters that test binaries which died left
// behind: their server is gone (it stops with its test binary), but not
// their directory.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid"))
		if err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
			if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				continue // a server runs there
			}
		} else if fi, err := os.Stat(d); err != nil || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// serverUser is the credential to run the server with: the postgres user
// when running as root, else nil (the current user).
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: no postgres user to run the server as: %v", ErrNoServer, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
