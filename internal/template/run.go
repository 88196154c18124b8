package template

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/saferoot"
)

// defaultPath is RUN's PATH when the Dockerfile sets none, as in Docker.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Files a RUN step's sandbox gets from the host instead of the tree, as in Docker:
// writes to them inside do not persist.
var runMounts = []string{"/etc/hosts", "/etc/resolv.conf"}

// heredocDir is where a RUN step's heredoc script is put for the step: in
// the step's upper directory only, removed before its changes are kept.
const heredocDir = "/.lelantos-heredoc"

// runStep runs a RUN instruction in a gVisor sandbox over the current tree.
func (b *Builder) runStep(ctx context.Context, st *buildState, o *runOp) error {
	if b.opts.Runtime == nil || b.opts.Network == nil {
		return fmt.Errorf("%w: RUN needs a runtime and a network manager", ErrInvalid)
	}
	var (
		args   []string
		script *scriptFile
		text   string
	)
	if o.shell {
		cmdline, heredoc := o.heredocBody()
		if heredoc != nil {
			script = &scriptFile{path: path.Join(heredocDir, path.Base("/"+heredoc.Name)), data: heredoc.Data}
			args = []string{script.path}
			text = "RUN script " + strconv.Quote(heredoc.Data)
		} else {
			args = append(slices.Clone(st.cfg.shellOf()), cmdline)
			j, _ := json.Marshal(args)
			text = "RUN sh " + string(j)
		}
	} else {
		if len(o.args) == 0 {
			return fmt.Errorf("%w: RUN [] has no command", ErrInvalid)
		}
		args = o.args
		j, _ := json.Marshal(args)
		text = "RUN exec " + string(j)
	}
	user := st.cfg.User
	if o.user != "" {
		user = o.user
	}
	var scratch []string
	for _, t := range o.scratch {
		scratch = append(scratch, st.abs(t))
	}
	text += fmt.Sprintf("\x00user=%s net=%t mounts=%s", user, !o.noNet, o.mounts)
	r := runSpec{args: args, user: user, noNet: o.noNet, scratch: scratch, script: script, shown: shortCmd(strings.Join(o.args, " "))}
	return b.fsStep(ctx, st, text, func(tmp string) (string, error) { return b.run(ctx, st, r, tmp) })
}

// mirrorDirs makes directory p and its parents in the step's upper
// directory, each a copy of the lower one's metadata where it has one (so
// that the step sees the tree's own), as Docker makes a mount's target.
func mirrorDirs(lower, upper *saferoot.Root, p string) error {
	parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	cur := "/"
	for _, part := range parts {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		if fi, err := upper.Lstat(cur); err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", cur)
			}
			continue
		}
		fi, lerr := lower.Lstat(cur)
		if lerr == nil && !fi.IsDir() {
			// A directory here would replace the tree's link or file.
			return fmt.Errorf("%s is not a directory in the tree", cur)
		}
		if err := upper.Mkdir(cur, 0o755); err != nil {
			return err
		}
		if lerr == nil {
			if err := copyMeta(lower, upper, cur); err != nil {
				return err
			}
		}
	}
	return nil
}

// scriptFile is a heredoc script a RUN step runs.
type scriptFile struct{ path, data string }

// runSpec is one RUN's command as it runs.
type runSpec struct {
	args    []string
	user    string
	noNet   bool
	scratch []string // paths whose writes are not kept
	script  *scriptFile
	shown   string // the command, for errors
}

// run executes the command and returns the resulting tree, made under tmp.
//
// The command runs in a gVisor sandbox whose root is an overlay of the current tree
// and an upper directory on a file system of its own (a stepDisk of RunDiskMB), so
// it can write no more than that on the host. Its exit status comes from the
// runtime: the sandbox's first process execs the command.
func (b *Builder) run(ctx context.Context, st *buildState, r runSpec, tmp string) (string, error) {
	lower, err := openTree(st.rootfs)
	if err != nil {
		return "", err
	}
	defer lower.Close()
	if !isFileIn(lower, "/bin/sh") {
		return "", fmt.Errorf("%w: RUN needs /bin/sh in the image", ErrInvalid)
	}
	acct, err := lookupUser(lower, r.user)
	if err != nil {
		return "", err
	}
	args, err := runArgs(lower, r.args, st.cwd(), acct)
	if err != nil {
		return "", err
	}
	// tmp and what the builder makes in it before the step runs are its own.
	diskDir, merged, box := filepath.Join(tmp, "disk"), filepath.Join(tmp, "merged"), filepath.Join(tmp, "box")
	for _, d := range []string{diskDir, merged, box} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", fmt.Errorf("run: %w", err)
		}
	}
	disk, err := mountStepDisk(ctx, filepath.Join(tmp, "disk.img"), diskDir, b.opts.RunDiskMB)
	if err != nil {
		return "", err
	}
	defer func() {
		if err := disk.close(); err != nil {
			b.opts.Logger.Error("remove build step disk", "dir", diskDir, "err", err)
		}
	}()
	upperDir, work := filepath.Join(diskDir, "upper"), filepath.Join(diskDir, "work")
	for _, d := range []string{upperDir, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", fmt.Errorf("run: %w", err)
		}
	}
	upper, err := openTree(upperDir)
	if err != nil {
		return "", err
	}
	defer upper.Close() // before the disk is unmounted
	// The overlay's root directory is the upper one: it must look like the tree's.
	if err := copyMeta(lower, upper, "."); err != nil {
		return "", fmt.Errorf("run: %w", err)
	}
	for _, d := range r.scratch {
		if err := mirrorDirs(lower, upper, d); err != nil {
			return "", fmt.Errorf("run: mount target %s: %w", d, err)
		}
	}
	if r.script != nil {
		if err := upper.MkdirAll(heredocDir, 0o755, owner{}); err != nil {
			return "", fmt.Errorf("run: %w", err)
		}
		if err := upper.WriteFile(r.script.path, []byte(r.script.data), 0o755); err != nil {
			return "", fmt.Errorf("run: %w", err)
		}
	}
	hosts, resolv, err := b.dnsFiles(ctx, st, lower, box)
	if err != nil {
		return "", err
	}
	if err := mountOverlay(st.rootfs, upperDir, work, merged); err != nil {
		return "", err
	}
	mounted := true
	defer func() {
		if mounted {
			_ = unmount(merged)
		}
	}()
	id := "lelbuild" + randHex(6)
	cfg := runtime.Config{
		RootfsPath: merged, Dir: box,
		Args:     args,
		Env:      st.runEnv(acct),
		Hostname: "lelantos", CPUCount: b.opts.RunCPUCount, MemoryMB: b.opts.RunMemoryMB, DiskSizeMB: b.opts.RunDiskMB,
		// The sandbox writes into the overlay, whose upper layer is the step disk.
		WritableRoot: true,
		Mounts:       []runtime.Mount{{Source: hosts, Destination: runMounts[0]}, {Source: resolv, Destination: runMounts[1]}},
		ConsolePath:  filepath.Join(box, "console.log"),
	}
	exit, err := b.execute(ctx, id, cfg, !r.noNet, st.log)
	mounted = false
	if uerr := unmount(merged); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		return "", err
	}
	switch {
	case exit.Code != 0 && disk.full():
		return "", fmt.Errorf("%w: the command %q ran out of disk space: a RUN step may write %d MB on this node", ErrStepFailed, r.shown, b.opts.RunDiskMB)
	case exit.Code < 0:
		return "", fmt.Errorf("%w: the command %q ended without an exit status (%s)", ErrStepFailed, r.shown, exit.Reason)
	case exit.Code != 0:
		return "", fmt.Errorf("%w: the command %q returned a non-zero code: %d", ErrStepFailed, r.shown, exit.Code)
	}
	drop := append(slices.Clone(runMounts), r.scratch...)
	if r.script != nil {
		drop = append(drop, heredocDir)
	}
	for _, m := range drop {
		if err := upper.RemoveAll(m); err != nil {
			return "", fmt.Errorf("run: %w", err)
		}
	}
	tree, err := b.childTree(ctx, st.rootfs, tmp)
	if err != nil {
		return "", err
	}
	out, err := openTree(tree)
	if err != nil {
		return "", err
	}
	defer out.Close()
	skipped, err := applyUpper(upper, out)
	if err != nil {
		return "", fmt.Errorf("apply the changes of RUN: %w", err)
	}
	if skipped > 0 {
		st.log.infof("warning: left out %d device files or sockets the command made", skipped)
	}
	return tree, nil
}
