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

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// build is one build's progress across its stages.
type build struct {
	req    BuildRequest
	df     *Dockerfile
	log    *buildLog
	res    *Result
	lex    *shell.Lex
	global map[string]string // the ARGs before FROM, build arguments applied
	used   map[string]bool   // build arguments some ARG consumed
	stages []*buildState     // by index; nil until built
	n, of  int               // the step being run, of how many
	// files holds the unpacked uploads of the build's COPY steps, by hash.
	files map[string]string
	// cleanup removes the work directories the build made.
	cleanup []func()
}

// buildState is one stage between two steps.
type buildState struct {
	b     *build
	stage *Stage
	// key is the cache key of the state: the hash chain of every step so far.
	key    string
	rootfs string
	cfg    imageConfig
	// args are the ARGs declared in the stage.
	args map[string]string
	// ownCmd is set when this Dockerfile, not a base image, set the CMD or
	// ENTRYPOINT; only then do they start the template.
	ownCmd bool
	// force rebuilds the steps from a forced one on.
	force bool
	// shortcuts for the build's fields
	req BuildRequest
	log *buildLog
	res *Result
}

// expander substitutes the stage's variables, as BuildKit does.
func (s *buildState) expander() expander {
	return func(w string) (string, error) {
		r, _, err := s.b.lex.ProcessWord(w, stageEnv{s})
		return r, err
	}
}

// chainKey is the cache key after text follows the state keyed parent.
func chainKey(parent, text string) string {
	h := sha256.New()
	fmt.Fprintf(h, "lelantos-layer-v1\x00%s\x00%s", parent, text)
	return hex.EncodeToString(h.Sum(nil))
}

// StepError is a build that failed at one step. Step names it as E2B's
// build reason does: "base" (the FROM), a step ("3": the 1-based step of
// the step form, the line of a Dockerfile), or "finalize" (the start
// command, the snapshot and the commit).
type StepError struct {
	Step string
	Err  error
}

// Error implements error.
func (e *StepError) Error() string { return e.Err.Error() }

// Unwrap returns the step's error.
func (e *StepError) Unwrap() error { return e.Err }

// definition is the request's template: its Dockerfile or its step form.
func (r *BuildRequest) definition() (*Dockerfile, error) {
	if r.Spec != nil {
		return r.Spec.Dockerfile()
	}
	return Parse(r.Dockerfile)
}

// build runs the template definition and commits the result as a new version.
func (b *Builder) build(ctx context.Context, req BuildRequest, log *buildLog) (*Result, error) {
	df, err := req.definition()
	if err != nil {
		return nil, err
	}
	bd := &build{req: req, df: df, log: log, lex: shell.NewLex(df.Escape), used: map[string]bool{},
		stages: make([]*buildState, len(df.Stages)), files: map[string]string{}}
	defer func() {
		for _, c := range slices.Backward(bd.cleanup) {
			c()
		}
	}()
	bd.res = &Result{BuildID: req.BuildID}
	if err := bd.metaArgs(); err != nil {
		return nil, err
	}
	needed, err := bd.neededStages()
	if err != nil {
		return nil, err
	}
	for i, s := range df.Stages {
		if needed[i] {
			bd.of += 1 + len(s.Steps)
		}
	}
	bd.res.Steps = bd.of
	for i := range df.Stages {
		if !needed[i] {
			continue
		}
		if err := b.runStage(ctx, bd, i); err != nil {
			return nil, err
		}
	}
	for _, k := range sortedKeys(req.BuildArgs) {
		if !bd.used[k] {
			log.infof("warning: build argument %s was not consumed by any ARG", k)
		}
	}
	final := bd.stages[len(df.Stages)-1]
	log.setStep("finalize")
	meta, t, err := b.commitVersion(ctx, final)
	if err != nil {
		return nil, &StepError{Step: "finalize", Err: err}
	}
	bd.res.Template, bd.res.Metadata = t, meta
	return bd.res, nil
}

// step runs one step.
func (b *Builder) step(ctx context.Context, st *buildState, s *Step) error {
	o := clone(s.op)
	_, isEnv := o.(*envOp)
	if st.b.df.expand || isEnv {
		if err := o.expand(st.expander()); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if s.force {
		st.force = true
	}
	switch o := o.(type) {
	case *argOp:
		return st.arg(o)
	case *envOp:
		var text []string
		for _, kv := range o.pairs {
			st.cfg.setenv(kv.Key, kv.Value)
			text = append(text, kv.Key+"="+kv.Value)
		}
		st.fold("ENV " + strings.Join(text, "\x00"))
	case *labelOp:
		if st.cfg.Labels == nil {
			st.cfg.Labels = map[string]string{}
		}
		for _, kv := range o.pairs {
			st.cfg.Labels[kv.Key] = kv.Value
		}
	case *exposeOp:
		for _, p := range o.ports {
			ports, err := st.b.lex.ProcessWords(p, stageEnv{st})
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			st.cfg.Ports = append(st.cfg.Ports, ports...)
		}
		st.log.infof(" ---> recorded; sandbox ports are reachable without EXPOSE")
	case *cmdOp:
		list := slices.Clone(o.args)
		if o.shell {
			list = append(slices.Clone(st.cfg.shellOf()), strings.Join(o.args, " "))
		}
		if o.entrypoint {
			st.cfg.Entrypoint = list
			if !st.ownCmd || st.cfg.Cmd == nil {
				st.cfg.Cmd = nil // an image's CMD does not follow a new ENTRYPOINT
			}
		} else {
			st.cfg.Cmd = list
		}
		st.ownCmd = true
		st.log.infof(" ---> recorded: the start command, unless the build gives one")
	case *healthOp:
		st.cfg.Healthcheck = slices.Clone(o.test)
		st.log.infof(" ---> recorded: the ready command, unless the build gives one")
	case *shellOp:
		st.cfg.Shell = slices.Clone(o.shell)
		st.fold("SHELL " + strings.Join(o.shell, "\x00"))
	case *stopOp:
		st.cfg.StopSignal = o.signal
	case *volumeOp:
		st.cfg.Volumes = append(st.cfg.Volumes, o.paths...)
		st.log.infof(" ---> recorded; sandboxes keep these paths on their own disk")
	case *userOp:
		return b.user(ctx, st, o)
	case *workdirOp:
		return b.workdir(ctx, st, o.path)
	case *runOp:
		return b.runStep(ctx, st, o)
	case *copyOp:
		return b.copyStep(ctx, st, s, o)
	default:
		return fmt.Errorf("%w: unknown instruction %s", ErrInvalid, s.Cmd)
	}
	return nil
}

// fold makes a step that changes no files part of the cache key.
func (s *buildState) fold(text string) { s.key = chainKey(s.key, text) }

// arg declares build arguments of the stage (a bare ARG NAME takes the value
// declared before FROM, as in Docker).
func (s *buildState) arg(o *argOp) error {
	var text []string
	for _, a := range o.args {
		v, ok := a.Value, a.HasValue
		if ok && s.b.df.expand {
			x, err := s.expander()(v)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			v = x
		}
		if g, gok := s.b.global[a.Key]; !ok && gok {
			v, ok = g, true
		}
		if bv, bok := s.req.BuildArgs[a.Key]; bok {
			v, ok = bv, true
			s.b.used[a.Key] = true
		}
		if !ok {
			v = ""
		}
		s.args[a.Key] = v
		text = append(text, a.Key+"="+v)
	}
	s.fold("ARG " + strings.Join(text, "\x00"))
	return nil
}

// cwd is the working directory of the build's commands.
func (s *buildState) cwd() string {
	if s.cfg.Workdir == "" {
		return "/"
	}
	return s.cfg.Workdir
}

// abs makes p absolute against the working directory.
func (s *buildState) abs(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(s.cwd(), p)
	}
	return path.Clean(p)
}

// fsStep runs a step that changes files: from the cache when its key is there, else
// by do, which builds the new tree under tmp; the tree then becomes a cached layer.
func (b *Builder) fsStep(ctx context.Context, st *buildState, text string, do func(tmp string) (string, error)) error {
	if st.req.NoCache || st.force {
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
