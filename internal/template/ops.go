package template

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// op is what one step does: one of the *...Op types below. Values are as
// written; expand substitutes the build's variables where a Dockerfile does.
type op interface {
	expand(x expander) error
}

// expander substitutes build variables in one word (BuildKit's shell lexer).
type expander func(string) (string, error)

// keyValue is one KEY=VALUE of ENV or LABEL.
type keyValue struct{ Key, Value string }

// argDecl is one declaration of ARG: a name with an optional default.
type argDecl struct {
	Key, Value string
	HasValue   bool
}

type (
	envOp     struct{ pairs []keyValue }
	labelOp   struct{ pairs []keyValue }
	argOp     struct{ args []argDecl }
	exposeOp  struct{ ports []string }
	workdirOp struct{ path string }
	// userOp sets the user; with create (E2B's USER step), a user the tree
	// lacks is made first, sudo giving it password-less sudo.
	userOp struct {
		user         string
		create, sudo bool
	}
	// cmdOp is CMD or ENTRYPOINT; shell means the shell form.
	cmdOp struct {
		entrypoint, shell bool
		args              []string
	}
	// healthOp is HEALTHCHECK: test is Docker's form (["NONE"], ["CMD", ...]
	// or ["CMD-SHELL", cmd]).
	healthOp struct{ test []string }
	shellOp  struct{ shell []string }
	stopOp   struct{ signal string }
	volumeOp struct{ paths []string }
	// runOp is RUN. With shell, args is one command line for the shell;
	// files are its heredocs. user, when set, runs this step only as that
	// user (E2B's RUN step). scratch are the targets of cache and tmpfs
	// mounts, whose writes the step does not keep.
	runOp struct {
		shell   bool
		args    []string
		files   []instructions.ShellInlineFile
		user    string
		noNet   bool
		scratch []string
		mounts  string // the --mount flags as written, for the cache key
		raw     *instructions.RunCommand
	}
	// copyOp is COPY or ADD. from is --from (a stage or an image); files
	// is, for E2B's COPY step, the hash of the uploaded archive that is its
	// context. contents are heredoc sources.
	copyOp struct {
		add          bool
		from, files  string
		sources      []string
		contents     []instructions.SourceContent
		dest         string
		chown, chmod string
		exclude      []string
		unpack       *bool
	}
)

// opOf converts a BuildKit instruction, refusing what a template cannot mean.
func opOf(c instructions.Command) (op, error) {
	switch c := c.(type) {
	case *instructions.EnvCommand:
		return &envOp{pairs: pairsOf(c.Env)}, nil
	case *instructions.LabelCommand:
		return &labelOp{pairs: pairsOf(c.Labels)}, nil
	case *instructions.MaintainerCommand:
		return &labelOp{pairs: []keyValue{{Key: "maintainer", Value: c.Maintainer}}}, nil
	case *instructions.ExposeCommand:
		return &exposeOp{ports: c.Ports}, nil
	case *instructions.WorkdirCommand:
		return &workdirOp{path: c.Path}, nil
	case *instructions.UserCommand:
		return &userOp{user: c.User}, nil
	case *instructions.CmdCommand:
		return &cmdOp{shell: c.PrependShell, args: c.CmdLine}, nil
	case *instructions.EntrypointCommand:
		return &cmdOp{entrypoint: true, shell: c.PrependShell, args: c.CmdLine}, nil
	case *instructions.HealthCheckCommand:
		return &healthOp{test: c.Health.Test}, nil
	case *instructions.ShellCommand:
		return &shellOp{shell: c.Shell}, nil
	case *instructions.StopSignalCommand:
		return &stopOp{signal: c.Signal}, nil
	case *instructions.VolumeCommand:
		return &volumeOp{paths: c.Volumes}, nil
	case *instructions.RunCommand:
		return runOpOf(c)
	case *instructions.CopyCommand:
		if c.Parents {
			return nil, fmt.Errorf("--parents is not supported")
		}
		return &copyOp{from: c.From, sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
			chown: c.Chown, chmod: c.Chmod, exclude: c.ExcludePatterns}, nil
	case *instructions.AddCommand:
		switch {
		case c.Checksum != "":
			return nil, fmt.Errorf("--checksum is for ADD of a URL, which the builder does not download: fetch it in a RUN step")
		case c.KeepGitDir != nil:
			return nil, fmt.Errorf("--keep-git-dir is for ADD of a git repository, which the builder does not clone: clone it in a RUN step")
		}
		return &copyOp{add: true, sources: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath,
			chown: c.Chown, chmod: c.Chmod, exclude: c.ExcludePatterns, unpack: c.Unpack}, nil
	case *instructions.OnbuildCommand:
		return nil, fmt.Errorf("cannot apply: ONBUILD instructions run in later builds from an image, and a template is not one; put the instruction in this Dockerfile")
	}
	return nil, fmt.Errorf("unknown instruction")
}

// runOpOf converts RUN, checking its flags.
func runOpOf(c *instructions.RunCommand) (op, error) {
	o := &runOp{shell: c.PrependShell, args: c.CmdLine, files: c.Files, raw: c}
	if !o.shell && len(o.args) == 0 {
		return nil, fmt.Errorf("RUN [] has no command")
	}
	if len(o.files) > 0 && (len(o.args) != 1 || !o.shell) {
		return nil, fmt.Errorf("a heredoc needs the shell form")
	}
	switch instructions.GetNetwork(c) {
	case instructions.NetworkNone:
		o.noNet = true
	case instructions.NetworkHost:
		return nil, fmt.Errorf("--network=host is not available: build steps run in sandboxes of their own")
	}
	if s := instructions.GetSecurity(c); s == "insecure" {
		return nil, fmt.Errorf("--security=insecure is not available: build steps run in sandboxes")
	}
	if len(instructions.GetDevices(c)) > 0 {
		return nil, fmt.Errorf("--device is not available: build steps run in sandboxes")
	}
	// Parse the mounts as written: variables are substituted at build time.
	if err := c.Expand(func(s string) (string, error) { return s, nil }); err != nil {
		return nil, err
	}
	var flags []string
	for _, m := range instructions.GetMounts(c) {
		if err := checkMount(m); err != nil {
			return nil, err
		}
		flags = append(flags, fmt.Sprintf("%s:%s", m.Type, m.Target))
	}
	o.mounts = strings.Join(flags, ",")
	return o, nil
}

// checkMount accepts the mounts a build can honour: cache and tmpfs (a
// scratch directory whose writes are not kept) and optional secrets (none
// are given, so they are absent, as Docker leaves them).
func checkMount(m *instructions.Mount) error {
	switch m.Type {
	case instructions.MountTypeCache, instructions.MountTypeTmpfs:
		if m.Target == "" {
			return fmt.Errorf("--mount=type=%s needs a target", m.Type)
		}
		if m.From != "" {
			return fmt.Errorf("--mount=type=%s,from=... is not supported", m.Type)
		}
		return nil
	case instructions.MountTypeSecret, instructions.MountTypeSSH:
		if m.Required {
			return fmt.Errorf("--mount=type=%s needs a %s, and template builds are given none", m.Type, m.Type)
		}
		return nil
	case instructions.MountTypeBind:
		return fmt.Errorf("--mount=type=bind is not supported: COPY the files in a step before")
	}
	return fmt.Errorf("--mount=type=%s is not supported", m.Type)
}

// secretLike reports whether m is a (missing, optional) secret or ssh mount.
func secretLike(m *instructions.Mount) bool {
	return m.Type == instructions.MountTypeSecret || m.Type == instructions.MountTypeSSH
}

func pairsOf(kvs instructions.KeyValuePairs) []keyValue {
	out := make([]keyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, keyValue{Key: kv.Key, Value: kv.Value})
	}
	return out
}

// ARG expands with its own scope
