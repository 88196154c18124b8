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
func (b *Builder) run(ctx context.Context, st *buildState, in Instruction, tmp string) (string, error) {
	if !isFileIn(st.rootfs, "/bin/sh") {
		return "", fmt.Errorf("%w: RUN needs /bin/sh in the image", ErrInvalid)
	}
	acct, err := lookupUser(st.rootfs, st.cfg.User)
	if err != nil {
		return "", err
	}
	exitFile := "/.lelantos-exit-" + randHex(6)
	script, err := runScript(st.rootfs, in, st.cwd(), acct, exitFile)
	if err != nil {
		return "", err
	}
	upper, work, merged, box := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "merged"), filepath.Join(tmp, "box")
	for _, d := range []string{upper, work, merged, box} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", fmt.Errorf("run: %w", err)
		}
	}
	// The overlay's root directory is the upper one: it must look like the tree's.
	if err := copyMeta(st.rootfs, upper); err != nil {
		return "", fmt.Errorf("run: %w", err)
	}
	hosts, resolv, err := b.dnsFiles(ctx, st, box)
	if err != nil {
		return "", err
	}
	if err := mountOverlay(st.rootfs, upper, work, merged); err != nil {
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
		Args:     []string{"/bin/sh", "-c", script},
		Env:      st.runEnv(acct),
		Hostname: "lelantos", CPUCount: b.opts.RunCPUCount, MemoryMB: b.opts.RunMemoryMB, DiskSizeMB: 1024,
		WritableRoot: true,
		Mounts:       []runtime.Mount{{Source: hosts, Destination: runMounts[0]}, {Source: resolv, Destination: runMounts[1]}},
		ConsolePath:  filepath.Join(box, "console.log"),
	}
	if err := b.execute(ctx, id, cfg, st.log); err != nil {
		return "", err
	}
	mounted = false
	if err := unmount(merged); err != nil {
		return "", err
	}
	code, err := readExitCode(filepath.Join(upper, exitFile))
	if err != nil {
		return "", fmt.Errorf("%w: the command ended without an exit status (killed?): %v", ErrStepFailed, err)
	}
	if code != 0 {
		return "", fmt.Errorf("%w: the command %q returned a non-zero code: %d", ErrStepFailed, shortCmd(in), code)
	}
	for _, m := range runMounts {
		if err := removeEntry(filepath.Join(upper, m)); err != nil {
			return "", fmt.Errorf("run: %w", err)
		}
	}
	tree, err := b.childTree(ctx, st.rootfs, tmp)
	if err != nil {
		return "", err
	}
	if err := applyUpper(upper, tree); err != nil {
		return "", fmt.Errorf("apply the changes of RUN: %w", err)
	}
	return tree, nil
}

// execute runs the sandbox to its end with a network that reaches the internet,
// copying its output into the log as it comes.
func (b *Builder) execute(ctx context.Context, id string, cfg runtime.Config, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.RunTimeout)
	defer cancel()
	ep, err := b.opts.Network.Setup(ctx, id, network.Options{AllowInternet: true})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer func() {
		if err := b.opts.Network.Teardown(context.WithoutCancel(ctx), id); err != nil {
			b.opts.Logger.Error("tear down build network", "sandbox", id, "err", err)
		}
	}()
	cfg.NetNSPath = ep.NetNSPath
	if err := os.WriteFile(cfg.ConsolePath, nil, 0o600); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	console, err := os.Open(cfg.ConsolePath)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer console.Close()
	rt := b.opts.Runtime
	if err := rt.Start(ctx, id, cfg); err != nil {
		_, _ = io.Copy(log, console)
		return fmt.Errorf("run: %w", err)
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
				return fmt.Errorf("%w: the command did not finish: %w", ErrStepFailed, ctx.Err())
			case w.err != nil:
				return fmt.Errorf("run: %w", w.err)
			case w.exit.OOMKilled:
				return fmt.Errorf("%w: the command ran out of memory (%d MB)", ErrStepFailed, cfg.MemoryMB)
			}
			return nil
		}
	}
}

// runScript is the sandbox's first process: as root, it enters the working directory,
// runs the command as the step's user and records its exit status in exitFile.
func runScript(root string, in Instruction, cwd string, a *account, exitFile string) (string, error) {
	cmd := in.JSON
	if cmd == nil {
		cmd = []string{"/bin/sh", "-c", in.Args}
	}
	var drop []string
	if a.UID != 0 || a.GID != 0 {
		setpriv := ""
		for _, p := range []string{"/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv", "/sbin/setpriv"} {
			if isFileIn(root, p) {
				setpriv = p
				break
			}
		}
		if setpriv == "" {
			return "", fmt.Errorf("%w: RUN as user %d needs setpriv (util-linux) in the image", ErrInvalid, a.UID)
		}
		groups := "--clear-groups"
		if len(a.Groups) > 0 {
			var g []string
			for _, n := range a.Groups {
				g = append(g, strconv.Itoa(n))
			}
			groups = "--groups=" + strings.Join(g, ",")
		}
		drop = []string{setpriv, "--reuid=" + strconv.Itoa(a.UID), "--regid=" + strconv.Itoa(a.GID), groups, "--"}
	}
	var q []string
	for _, w := range append(drop, cmd...) {
		q = append(q, shellQuote(w))
	}
	return fmt.Sprintf("(cd -- %s && exec %s); echo $? > %s", shellQuote(cwd), strings.Join(q, " "), shellQuote(exitFile)), nil
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

func readExitCode(p string) (int, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	if err := os.Remove(p); err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

func shortCmd(in Instruction) string {
	s := in.Args
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// isFileIn reports whether p is a regular file in the tree at root.
func isFileIn(root, p string) bool {
	r, err := resolveIn(root, p, true)
	if err != nil {
		return false
	}
	fi, err := os.Lstat(r)
	return err == nil && fi.Mode().IsRegular()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
