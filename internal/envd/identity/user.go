// Package identity decides who a daemon call runs as: it resolves Linux users
// (from the Authorization header, the username query or the sandbox default),
// expands their paths, and runs file operations with their credentials (Do), so
// that the kernel itself decides what they may touch when they touch it.
package identity

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnknownUser is returned when a named user does not exist in the sandbox.
var ErrUnknownUser = errors.New("unknown user")

// ErrBadAuthorization is returned for an Authorization header that is not
// `Basic base64("<user>:")`.
var ErrBadAuthorization = errors.New("malformed Authorization header")

// ErrBadPath is returned for a path that cannot be resolved (e.g. "~other").
var ErrBadPath = errors.New("invalid path")

// FallbackUser is the user calls run as when neither the call nor /init names
// one and it exists; otherwise they run as root.
const FallbackUser = "user"

// User is a resolved Linux account.
type User struct {
	// Name is the login name.
	Name string
	// UID and GID are the numeric user and primary group ids.
	UID, GID uint32
	// Groups are all group ids the user belongs to, the primary one included.
	Groups []uint32
	// Home is the home directory.
	Home string
	// threads, when set, keeps threads holding the user's credentials for Do.
	threads *Threads
}

// IsRoot reports whether the user is uid 0.
func (u User) IsRoot() bool { return u.UID == 0 }

// inGroup reports whether gid is one of the user's groups.
func (u User) inGroup(gid uint32) bool {
	for _, g := range u.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// Lookup resolves a user by name from the sandbox's user database.
func Lookup(name string) (User, error) {
	if name == "" {
		return User{}, fmt.Errorf("look up user: %w: empty name", ErrUnknownUser)
	}
	pw, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("look up user %q: %w", name, ErrUnknownUser)
	}
	uid, err := strconv.ParseUint(pw.Uid, 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("look up user %q: bad uid %q", name, pw.Uid)
	}
	gid, err := strconv.ParseUint(pw.Gid, 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("look up user %q: bad gid %q", name, pw.Gid)
	}
	u := User{Name: pw.Username, UID: uint32(uid), GID: uint32(gid), Home: pw.HomeDir, Groups: []uint32{uint32(gid)}}
	if u.Home == "" {
		u.Home = "/"
	}
	if ids, err := pw.GroupIds(); err == nil {
		for _, id := range ids {
			g, err := strconv.ParseUint(id, 10, 32)
			if err == nil && !u.inGroup(uint32(g)) {
				u.Groups = append(u.Groups, uint32(g))
			}
		}
	}
	return u, nil
}

// Resolve returns the user named by name; when name is empty, the sandbox
// default (defaultName, from /init), else FallbackUser when it exists, else root.
func Resolve(name, defaultName string) (User, error) {
	switch {
	case name != "":
		return Lookup(name)
	case defaultName != "":
		return Lookup(defaultName)
	}
	if u, err := Lookup(FallbackUser); err == nil {
		return u, nil
	}
	return Lookup("root")
}

// UsernameFromAuthorization extracts the user from an `Authorization: Basic
// base64("<user>:")` header value. An empty value yields "".
func UsernameFromAuthorization(value string) (string, error) {
	if value == "" {
		return "", nil
	}
	scheme, payload, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", ErrBadAuthorization
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadAuthorization, err)
	}
	name, _, _ := strings.Cut(string(raw), ":")
	return name, nil
}

// Abs resolves p for the user: "" becomes workdir (or the home directory when
// workdir is empty), "~" and "~/x" expand to the home directory, and relative
// paths are taken from the home directory. The result is clean and absolute.
func (u User) Abs(p, workdir string) (string, error) {
	if p == "" {
		p = workdir
		if p == "" {
			p = u.Home
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: contains NUL", ErrBadPath)
	}
	if strings.HasPrefix(p, "~") {
		rest := p[1:]
		if rest != "" && rest[0] != '/' {
			return "", fmt.Errorf("%w: cannot expand %q", ErrBadPath, p)
		}
		p = filepath.Join(u.Home, rest)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(u.Home, p)
	}
	return filepath.Clean(p), nil
}
