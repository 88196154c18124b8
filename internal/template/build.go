package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// imageConfig is what instructions change besides files.
type imageConfig struct {
	Env        []string          `json:"env,omitempty"` // KEY=VALUE, in order
	User       string            `json:"user,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Ports      []string          `json:"ports,omitempty"`
}

func (c *imageConfig) getenv(k string) (string, bool) {
	for _, kv := range slices.Backward(c.Env) {
		if name, v, _ := strings.Cut(kv, "="); name == k {
			return v, true
		}
	}
	return "", false
}

func (c *imageConfig) setenv(k, v string) {
	c.Env = slices.DeleteFunc(c.Env, func(kv string) bool { name, _, _ := strings.Cut(kv, "="); return name == k })
	c.Env = append(c.Env, k+"="+v)
}

// buildState is a build between two steps.
type buildState struct {
	req    BuildRequest
	log    *buildLog
	res    *Result
	escape byte
	// key is the cache key of the state: the hash chain of every instruction so far.
	key    string
	rootfs string
	cfg    imageConfig
	// global are the ARGs declared before FROM; args those declared after it.
	global, args map[string]string
	usedArgs     map[string]bool
	// staged is true once FROM has run.
	staged bool
}

// lexer expands with ENV first, then ARGs in scope.
func (s *buildState) lexer() wordLexer {
	return wordLexer{escape: s.escape, vars: func(k string) (string, bool) {
		if v, ok := s.cfg.getenv(k); ok {
			return v, true
		}
		v, ok := s.args[k]
		return v, ok
	}}
}

// chainKey is the cache key after text follows the state keyed parent.
func chainKey(parent, text string) string {
	h := sha256.New()
	fmt.Fprintf(h, "lelantos-layer-v1\x00%s\x00%s", parent, text)
	return hex.EncodeToString(h.Sum(nil))
}

// build runs the Dockerfile and commits the result as a new version.
func (b *Builder) build(ctx context.Context, req BuildRequest, log *buildLog) (*Result, error) {
	df, err := Parse(req.Dockerfile)
	if err != nil {
		return nil, err
	}
	st := &buildState{
		req: req, log: log, escape: df.Escape,
		res:    &Result{BuildID: req.BuildID, Steps: len(df.Instructions)},
		global: map[string]string{}, args: map[string]string{}, usedArgs: map[string]bool{},
	}
	for i, in := range df.Instructions {
		log.infof("Step %d/%d : %s", i+1, len(df.Instructions), in.Original())
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.step(ctx, st, in); err != nil {
			return nil, fmt.Errorf("step %d/%d (line %d, %s): %w", i+1, len(df.Instructions), in.Line, in.Cmd, err)
		}
	}
	for _, k := range sortedKeys(req.BuildArgs) {
		if !st.usedArgs[k] {
			log.infof("warning: build argument %s was not consumed by any ARG", k)
		}
	}
	meta, t, err := b.commitVersion(ctx, st)
	if err != nil {
		return nil, err
	}
	st.res.Template, st.res.Metadata = t, meta
	return st.res, nil
}

// step runs one instruction.
func (b *Builder) step(ctx context.Context, st *buildState, in Instruction) error {
	lx := st.lexer()
	switch in.Cmd {
	case "FROM":
		return b.from(ctx, st, in)
	case "ARG":
		return st.arg(in)
	case "ENV":
		kvs, err := lx.keyValues(in.Args, false, true)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		var text []string
		for _, kv := range kvs {
			st.cfg.setenv(kv.Key, kv.Value)
			text = append(text, kv.Key+"="+kv.Value)
		}
		st.fold("ENV " + strings.Join(text, "\x00"))
	case "LABEL":
		kvs, err := lx.keyValues(in.Args, false, false)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if st.cfg.Labels == nil {
			st.cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			st.cfg.Labels[kv.Key] = kv.Value
		}
	case "EXPOSE":
		ports, err := lx.words(in.Args)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		st.cfg.Ports = append(st.cfg.Ports, ports...)
		st.log.infof(" ---> recorded; sandbox ports are reachable without EXPOSE")
	case "CMD", "ENTRYPOINT":
		list := in.JSON
		if list == nil {
			list = []string{"/bin/sh", "-c", in.Args}
		}
		if in.Cmd == "CMD" {
			st.cfg.Cmd = list
		} else {
			st.cfg.Entrypoint = list
		}
		st.log.infof(" ---> recorded, not run: a template's process starts from StartCmd")
	case "USER":
		u, err := lx.word(in.Args)
		if err != nil || u == "" {
			return fmt.Errorf("%w: bad user %q: %v", ErrInvalid, in.Args, err)
		}
		st.cfg.User = u
		st.fold("USER " + u)
	case "WORKDIR":
		return b.workdir(ctx, st, in)
	case "RUN":
		return b.runStep(ctx, st, in)
	case "COPY", "ADD":
		return b.copyStep(ctx, st, in)
	default:
		return &SyntaxError{Line: in.Line, Cmd: in.Cmd, Msg: "unknown instruction"}
	}
	return nil
}

// fold makes a step that changes no files part of the cache key.
func (s *buildState) fold(text string) { s.key = chainKey(s.key, text) }

// arg declares build arguments: before FROM for FROM lines only, after it for the
// rest of the stage (a bare ARG NAME after FROM takes the value declared before).
func (s *buildState) arg(in Instruction) error {
	// ARG defaults may use ARGs declared before them, not ENV.
	scope := s.args
	if !s.staged {
		scope = s.global
	}
	lx := wordLexer{escape: s.escape, vars: func(k string) (string, bool) { v, ok := scope[k]; return v, ok }}
	kvs, err := lx.keyValues(in.Args, true, false)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var text []string
	for _, kv := range kvs {
		v, ok := kv.Value, kv.HasValue
		if g, gok := s.global[kv.Key]; !ok && gok && s.staged {
			v, ok = g, true
		}
		if bv, bok := s.req.BuildArgs[kv.Key]; bok {
			v, ok = bv, true
			s.usedArgs[kv.Key] = true
		}
		if !ok {
			v = ""
		}
		scope[kv.Key] = v
		text = append(text, kv.Key+"="+v)
	}
	if s.staged {
		s.fold("ARG " + strings.Join(text, "\x00"))
	}
	return nil
}

// workdir sets the working directory, creating it (owned by the current USER) when
// the tree lacks it.
func (b *Builder) workdir(ctx context.Context, st *buildState, in Instruction) error {
	w, err := st.lexer().word(in.Args)
	if err != nil || w == "" {
		return fmt.Errorf("%w: bad directory %q: %v", ErrInvalid, in.Args, err)
	}
	if !path.IsAbs(w) {
		w = path.Join(st.cwd(), w)
	}
	w = path.Clean(w)
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

// cwd is the working directory of the build's commands.
func (s *buildState) cwd() string {
	if s.cfg.Workdir == "" {
		return "/"
	}
	return s.cfg.Workdir
}

// fsStep runs a step that changes files: from the cache when its key is there, else
// by do, which builds the new tree under tmp; the tree then becomes a cached layer.
func (b *Builder) fsStep(ctx context.Context, st *buildState, text string, do func(tmp string) (string, error)) error {
	if st.req.NoCache {
		text += "\x00no-cache " + st.req.BuildID
	}
	key := chainKey(st.key, text)
	if l, ok := b.cachedLayer(key); ok {
		st.log.infof(" ---> using cache (layer %s)", key[:12])
		st.key, st.rootfs = key, l.Rootfs
		st.res.CacheHits++
		return nil
	}
	tmp, err := b.tempDir("step-")
	if err != nil {
		return err
	}
	defer b.removeTemp(tmp)
	start := time.Now()
	tree, err := do(tmp)
	if err != nil {
		return err
	}
	l, err := b.commitLayer(tmp, key, st.key, text, tree, nil)
	if err != nil {
		return err
	}
	st.log.infof(" ---> layer %s (%s)", key[:12], time.Since(start).Round(time.Millisecond))
	st.key, st.rootfs = key, l.Rootfs
	st.res.Ran++
	return ctx.Err()
}
