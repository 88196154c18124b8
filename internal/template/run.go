package template

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/network"
	"lelantos.dev/lelantos/internal/runtime"
	"lelantos.dev/lelantos/internal/saferoot"
)

// defaultPath is RUN's PATH when the Dockerfile sets none, as in Docker.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Files a RUN step's sandbox gets from the host instead of the tree, as in Docker:
// writes to them inside do not persist.
var runMounts = []string{"/etc/hosts", "/etc/resolv.conf"}

// runStep runs a RUN instruction in a gVisor sandbox over the current tree.
func (b *Builder) runStep(ctx context.Context, st *buildState, in Instruction) error {
	if b.opts.Runtime == nil || b.opts.Network == nil {
		return fmt.Errorf("%w: RUN needs a runtime and a network manager", ErrInvalid)
	}
	text := "RUN sh " + in.Args
	if in.JSON != nil {
		j, _ := json.Marshal(in.JSON)
		text = "RUN exec " + string(j)
		if len(in.JSON) == 0 {
			return fmt.Errorf("%w: RUN [] has no command", ErrInvalid)
		}
	}
	return b.fsStep(ctx, st, text, func(tmp string) (string, error) { return b.run(ctx, st, in, tmp) })
}

// run executes the command of in and returns the resulting tree, made under tmp.
//
// The command runs in a gVisor sandbox whose root is an overlay of the current tree
// and an upper directory on a file system of its own (a stepDisk of RunDiskMB), so
// it can write no more than that on the host. Its exit status comes from the
// runtime: the sandbox's first process execs the command.
func (b *Builder) run(ctx context.Context, st *buildState, in Instruction, tmp string) (string, error) {
	lower, err := openTree(st.rootfs)
	if err != nil {
		return "", err
	}
	defer lower.Close()
	if !isFileIn(lower, "/bin/sh") {
		return "", fmt.Errorf("%w: RUN needs /bin/sh in the image", ErrInvalid)
	}
	acct, err := lookupUser(lower, st.cfg.User)
	if err != nil {
		return "", err
	}
	args, err := runArgs(lower, in, st.cwd(), acct)
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
	exit, err := b.execute(ctx, id, cfg, st.log)
	mounted = false
	if uerr := unmount(merged); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		return "", err
	}
	switch {
	case exit.Code != 0 && disk.full():
		return "", fmt.Errorf("%w: the command %q ran out of disk space: a RUN step may write %d MB on this node", ErrStepFailed, shortCmd(in), b.opts.RunDiskMB)
	case exit.Code < 0:
		return "", fmt.Errorf("%w: the command %q ended without an exit status (%s)", ErrStepFailed, shortCmd(in), exit.Reason)
	case exit.Code != 0:
		return "", fmt.Errorf("%w: the command %q returned a non-zero code: %d", ErrStepFailed, shortCmd(in), exit.Code)
	}
	for _, m := range runMounts {
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

// execute runs the sandbox to its end with a network that reaches the internet,
// copying its output into the log as it comes.
func (b *Builder) execute(ctx context.Context, id string, cfg runtime.Config, log io.Writer) (runtime.Exit, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.RunTimeout)
	defer cancel()
	fail := runtime.Exit{Code: -1}
	ep, err := b.opts.Network.Setup(ctx, id, network.Options{AllowInternet: true})
	if err != nil {
		return fail, fmt.Errorf("run: %w", err)
	}
	defer func() {
		if err := b.opts.Network.Teardown(context.WithoutCancel(ctx), id); err != nil {
			b.opts.Logger.Error("tear down build network", "sandbox", id, "err", err)
		}
	}()
	cfg.NetNSPath = ep.NetNSPath
	if err := os.WriteFile(cfg.ConsolePath, nil, 0o600); err != nil {
		return fail, fmt.Errorf("run: %w", err)
	}
	console, err := os.Open(cfg.ConsolePath)
	if err != nil {
		return fail, fmt.Errorf("run: %w", err)
	}
	defer console.Close()
	rt := b.opts.Runtime
	if err := rt.Start(ctx, id, cfg); err != nil {
		_, _ = io.Copy(log, console)
		return fail, fmt.Errorf("run: %w", err)
	}
	defer func() {
		if err := rt.Kill(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			b.opts.Logger.Error("remove build sandbox", "sandbox", id, "err", err)
		}
	}()
	type waited struct {
		exit runtime.Exit
		err  error
	}
	done := make(chan waited, 1)
	go func() {
		exit, err := rt.Wait(ctx, id)
		done <- waited{exit, err}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_, _ = io.Copy(log, console)
		case w := <-done:
			_, _ = io.Copy(log, console)
			switch {
			case w.err != nil && ctx.Err() != nil:
				return fail, fmt.Errorf("%w: the command did not finish: %w", ErrStepFailed, ctx.Err())
			case w.err != nil:
				return fail, fmt.Errorf("run: %w", w.err)
			case w.exit.OOMKilled:
				return fail, fmt.Errorf("%w: the command ran out of memory (%d MB)", ErrStepFailed, cfg.MemoryMB)
			}
			return w.exit, nil
		}
	}
}

// runArgs is the sandbox's first process: as root, a shell enters the working
// directory and execs the command, as the step's user through setpriv when that is
// not root. The command's exit status is so the sandbox's.
func runArgs(tree *saferoot.Root, in Instruction, cwd string, a *account) ([]string, error) {
	cmd := in.JSON
	if cmd == nil {
		cmd = []string{"/bin/sh", "-c", in.Args}
	}
	args := []string{"/bin/sh", "-c", `cd -- "$1" || exit; shift; exec "$@"`, "sh", cwd}
	if a.UID != 0 || a.GID != 0 {
		setpriv := ""
		for _, p := range []string{"/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv", "/sbin/setpriv"} {
			if isFileIn(tree, p) {
				setpriv = p
				break
			}
		}
		if setpriv == "" {
			return nil, fmt.Errorf("%w: RUN as user %d needs setpriv (util-linux) in the image", ErrInvalid, a.UID)
		}
		groups := "--clear-groups"
		if len(a.Groups) > 0 {
			var g []string
			for _, n := range a.Groups {
				g = append(g, strconv.Itoa(n))
			}
			groups = "--groups=" + strings.Join(g, ",")
		}
		args = append(args, setpriv, "--reuid="+strconv.Itoa(a.UID), "--regid="+strconv.Itoa(a.GID), groups, "--")
	}
	return append(args, cmd...), nil
}

// runEnv is the environment of a RUN command: ENV, then ARGs ENV does not shadow,
// with Docker's defaults for PATH and HOME.
func (s *buildState) runEnv(a *account) []string {
	env := append([]string(nil), s.cfg.Env...)
	for _, k := range sortedKeys(s.args) {
		if _, ok := s.cfg.getenv(k); !ok {
			env = append(env, k+"="+s.args[k])
		}
	}
	if _, ok := s.cfg.getenv("PATH"); !ok {
		env = append(env, "PATH="+defaultPath)
	}
	if _, ok := s.cfg.getenv("HOME"); !ok {
		env = append(env, "HOME="+a.Home)
	}
	return env
}

func shortCmd(in Instruction) string {
	s := in.Args
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
