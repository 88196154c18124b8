package identity

import (
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// The user database Users reads.
const (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// Users resolves users as Lookup and Resolve do, and keeps the accounts it read
// for as long as /etc/passwd and /etc/group stay the same files with the same
// size and times (a stat of each on every call): a lookup then costs two stats
// instead of reading and parsing both files. Users it returns run Do on threads
// of its Threads pool. Safe for concurrent use.
type Users struct {
	threads *Threads
	files   [2]string

	mu    sync.Mutex
	stamp [2]fileStamp
	known map[string]User
}

// NewUsers returns a Users reading the sandbox's /etc/passwd and /etc/group.
func NewUsers() *Users {
	return &Users{threads: NewThreads(), files: [2]string{passwdFile, groupFile}, known: map[string]User{}}
}

// fileStamp is what tells that a file changed: which file it is, its size and
// its modification and change times.
type fileStamp struct {
	dev, ino, size uint64
	mtime, ctime   unix.Timespec
}

func stampOf(path string) (fileStamp, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileStamp{}, false
	}
	return fileStamp{dev: st.Dev, ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim, ctime: st.Ctim}, true
}

// Lookup resolves a user by name, as the package's Lookup does.
func (c *Users) Lookup(name string) (User, error) {
	var now [2]fileStamp
	stable := true
	for i, f := range c.files {
		st, ok := stampOf(f)
		now[i], stable = st, stable && ok
	}
	c.mu.Lock()
	if !stable || now != c.stamp {
		clear(c.known)
		c.stamp = now
	}
	u, hit := c.known[name]
	c.mu.Unlock()
	if hit {
		u.Groups = slices.Clone(u.Groups)
		return u, nil
	}
	u, err := Lookup(name)
	if err != nil {
		return User{}, err
	}
	u.threads = c.threads
	if stable {
		c.mu.Lock()
		if c.stamp == now { // not changed again meanwhile
			c.known[name] = u
		}
		c.mu.Unlock()
	}
	u.Groups = slices.Clone(u.Groups)
	return u, nil
}

// Resolve returns the user named by name, or the default, as the package's
// Resolve does.
func (c *Users) Resolve(name, defaultName string) (User, error) {
	switch {
	case name != "":
		return c.Lookup(name)
	case defaultName != "":
		return c.Lookup(defaultName)
	}
	if u, err := c.Lookup(FallbackUser); err == nil {
		return u, nil
	}
	return c.Lookup("root")
}
