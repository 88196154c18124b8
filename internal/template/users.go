package template

import (
	"fmt"
	"strconv"
	"strings"

	"lelantos.dev/lelantos/internal/saferoot"
)

// account is a user as a tree's /etc/passwd and /etc/group describe it.
type account struct {
	Name     string // empty for a numeric user the tree does not know
	UID, GID int
	Groups   []int // supplementary groups
	Home     string
}

// lookupUser resolves a USER value ("name", "uid", "name:group", "uid:gid") in the
// tree, the way Docker does.
func lookupUser(root *saferoot.Root, spec string) (*account, error) {
	if spec == "" {
		spec = "root"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	passwd := parseColonFile(root, "/etc/passwd", 7)
	groups := parseColonFile(root, "/etc/group", 4)
	a := &account{Home: "/"}
	uid, numeric := atoi(userPart)
	found := false
	for _, f := range passwd {
		if (numeric && f[2] == userPart) || (!numeric && f[0] == userPart) {
			a.Name, a.Home = f[0], f[5]
			a.UID, _ = atoi(f[2])
			a.GID, _ = atoi(f[3])
			found = true
			break
		}
	}
	switch {
	case !found && userPart == "root":
		a.Name, a.Home = "root", "/root"
	case !found && !numeric:
		return nil, fmt.Errorf("%w: user %q: no matching entry in the image's /etc/passwd", ErrInvalid, userPart)
	case !found:
		a.UID, a.GID = uid, uid
		if !hasGroup {
			a.GID = 0
		}
	}
	if hasGroup {
		gid, ok := atoi(groupPart)
		if !ok {
			gid = -1
			for _, f := range groups {
				if f[0] == groupPart {
					gid, _ = atoi(f[2])
					break
				}
			}
			if gid < 0 {
				return nil, fmt.Errorf("%w: group %q: no matching entry in the image's /etc/group", ErrInvalid, groupPart)
			}
		}
		a.GID = gid
	}
	if a.Name != "" {
		for _, f := range groups {
			gid, ok := atoi(f[2])
			if !ok || gid == a.GID {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == a.Name {
					a.Groups = append(a.Groups, gid)
				}
			}
		}
	}
	return a, nil
}

// maxUserDB bounds what is read of /etc/passwd and /etc/group.
const maxUserDB = 8 << 20

// parseColonFile reads a colon-separated database of the tree, keeping lines with at
// least n fields (padded to n). A missing, unreadable or oversized file reads as
// empty.
func parseColonFile(root *saferoot.Root, p string, n int) [][]string {
	data, err := root.ReadFile(p, maxUserDB)
	if err != nil {
		return nil
	}
	var out [][]string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < n-1 {
			continue
		}
		for len(f) < n {
			f = append(f, "")
		}
		out = append(out, f)
	}
	return out
}

func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}
