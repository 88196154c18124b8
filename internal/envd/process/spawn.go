package process

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/errmap"
	"lelantos.dev/lelantos/internal/envd/identity"
	pb "lelantos.dev/lelantos/internal/gen/envd/process"
)

// defaultPath is the PATH processes get when the daemon itself has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// spec is a validated request to start a process.
type spec struct {
	path   string
	args   []string
	env    []string
	dir    string
	user   identity.User
	pty    *pb.PTY_Size
	stdin  bool
	tag    *string
	config *pb.ProcessConfig
	// explain, when set, checks the working directory and the command as the
	// user after a start failed, and returns the error that says which is wrong
	// (nil when both are fine).
	explain func() error
}

// buildSpec validates req for user u, with the sandbox's environment and
// default working directory.
func buildSpec(req *pb.StartRequest, u identity.User, sandboxEnv map[string]string, workdir string) (*spec, error) {
	cfg := req.GetProcess()
	if cfg == nil || cfg.GetCmd() == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("process.cmd is required"))
	}
	if req.Pty != nil && (req.GetPty().GetSize().GetCols() > 0xffff || req.GetPty().GetSize().GetRows() > 0xffff) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("pty size out of range"))
	}
	dir, err := u.Abs(cfg.GetCwd(), workdir)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("resolve cwd: %w", err))
	}
	env, err := buildEnv(u, sandboxEnv, cfg.GetEnvs())
	if err != nil {
		return nil, err
	}
	// The user's view of the tree: what the process will find once it runs as u.
	var path string
	check := func() error {
		err := u.Do(func() error {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("cwd '%s' does not exist or is not a directory", dir))
			}
			var err error
			if path, err = lookPath(cfg.GetCmd(), dir, envValue(env, "PATH")); err != nil {
				return connect.NewError(connect.CodeInvalidArgument, err)
			}
			return nil
		})
		if err != nil {
			return errmap.Connect("start "+cfg.GetCmd(), err)
		}
		return nil
	}
	// A command named by its path needs no search: the child changes into the
	// directory as u and execs the path, so the kernel checks both then, and the
	// check runs only to explain a start that failed (see spec.explain).
	explain := check
	if strings.Contains(cfg.GetCmd(), "/") {
		if path, err = lookPath(cfg.GetCmd(), dir, ""); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
	} else {
		if err := check(); err != nil {
			return nil, err
		}
		explain = nil
	}
	sp := &spec{
		path:    path,
		args:    append([]string{cfg.GetCmd()}, cfg.GetArgs()...),
		env:     env,
		dir:     dir,
		user:    u,
		stdin:   req.Stdin == nil || req.GetStdin(),
		tag:     req.Tag,
		config:  cfg,
		explain: explain,
	}
	if req.Pty != nil {
		sp.pty = req.GetPty().GetSize()
		if sp.pty == nil {
			sp.pty = &pb.PTY_Size{}
		}
		sp.stdin = false
	}
	return sp, nil
}

// buildEnv layers PATH, HOME, USER and LOGNAME, then the sandbox's variables,
// then the call's, and returns them sorted as KEY=value.
func buildEnv(u identity.User, sandboxEnv, callEnv map[string]string) ([]string, error) {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	vars := map[string]string{"PATH": path, "HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name}
	maps.Copy(vars, sandboxEnv)
	maps.Copy(vars, callEnv)
	out := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(vars[k], 0) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("invalid environment variable %q", k))
		}
		out = append(out, k+"="+vars[k])
	}
	return out, nil
}

// envValue returns the value of key in a KEY=value list.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath finds the executable for name the way a shell would with the
// process's own PATH; names with a slash are taken relative to dir.
func lookPath(name, dir, pathVar string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", errors.New("command contains NUL")
	}
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		candidate := filepath.Join(d, name)
		st, err := os.Stat(candidate)
		if err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH: %w", name, fs.ErrNotExist)
}
