package template

import (
	"context"
	"fmt"
	"strings"
)

// workdir sets the working directory, creating it (owned by the current USER) when
// the tree lacks it.
func (b *Builder) workdir(ctx context.Context, st *buildState, p string) error {
	if p == "" {
		return fmt.Errorf("%w: WORKDIR needs a directory", ErrInvalid)
	}
	w := st.abs(p)
	st.cfg.Workdir = w
	lower, err := openTree(st.rootfs)
	if err != nil {
		return err
	}
	defer lower.Close()
	if isDirIn(lower, w) {
		st.fold("WORKDIR " + w)
		return nil
	}
	uid, gid := 0, 0
	if st.cfg.User != "" {
		u, err := lookupUser(lower, st.cfg.User)
		if err != nil {
			return err
		}
		uid, gid = u.UID, u.GID
	}
	return b.fsStep(ctx, st, fmt.Sprintf("WORKDIR %s (mkdir %d:%d)", w, uid, gid), func(tmp string) (string, error) {
		treeDir, err := b.childTree(ctx, st.rootfs, tmp)
		if err != nil {
			return "", err
		}
		tree, err := openTree(treeDir)
		if err != nil {
			return "", err
		}
		defer tree.Close()
		if err := tree.MkdirAll(w, 0o755, owner{UID: uid, GID: gid}); err != nil {
			return "", fmt.Errorf("create %s: %w", w, err)
		}
		return treeDir, nil
	})
}

// user sets the user of the steps after it and of the template's sandboxes.
// E2B's USER step makes the user first when the tree lacks it (with a home
// directory and bash), and with sudo lets it use sudo without a password.
func (b *Builder) user(ctx context.Context, st *buildState, o *userOp) error {
	if o.user == "" {
		return fmt.Errorf("%w: USER needs a user", ErrInvalid)
	}
	if o.create {
		lower, err := openTree(st.rootfs)
		if err != nil {
			return err
		}
		_, lerr := lookupUser(lower, o.user)
		lower.Close()
		name, _, _ := strings.Cut(o.user, ":")
		var script []string
		if lerr != nil && !isNumeric(name) {
			script = append(script, fmt.Sprintf("if command -v useradd >/dev/null; then useradd -m -s /bin/bash %[1]s 2>/dev/null || useradd -m %[1]s; else adduser -D %[1]s; fi", name))
		}
		if o.sudo {
			script = append(script, fmt.Sprintf("mkdir -p /etc/sudoers.d && echo '%[1]s ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/%[1]s && chmod 0440 /etc/sudoers.d/%[1]s", name))
		}
		if len(script) > 0 {
			st.log.infof(" ---> adding user %s", name)
			if err := b.runStep(ctx, st, &runOp{shell: true, args: []string{strings.Join(script, " && ")}, user: "root"}); err != nil {
				return err
			}
		}
	}
	st.cfg.User = o.user
	st.fold("USER " + o.user)
	return nil
}

func isNumeric(s string) bool {
	_, ok := atoi(s)
	return ok
}
