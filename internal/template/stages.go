package template

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// automaticArgs are the platform ARGs BuildKit defines before FROM.
func automaticArgs() map[string]string {
	p := "linux/" + goarch
	return map[string]string{"TARGETPLATFORM": p, "TARGETOS": "linux", "TARGETARCH": goarch, "TARGETVARIANT": "",
		"BUILDPLATFORM": p, "BUILDOS": "linux", "BUILDARCH": goarch, "BUILDVARIANT": ""}
}

// metaArgs declares the ARGs before the first FROM.
func (bd *build) metaArgs() error {
	bd.global = automaticArgs()
	for _, a := range bd.df.MetaArgs {
		v, ok := a.Value, a.HasValue
		if ok && bd.df.expand {
			x, _, err := bd.lex.ProcessWord(v, mapEnv(bd.global))
			if err != nil {
				return &SyntaxError{Line: 1, Cmd: "ARG", Msg: err.Error()}
			}
			v = x
		}
		if bv, bok := bd.req.BuildArgs[a.Key]; bok {
			v, ok = bv, true
			bd.used[a.Key] = true
		}
		if !ok {
			v = ""
		}
		bd.global[a.Key] = v
	}
	return nil
}

// fromName is a stage's base after the ARGs before FROM are substituted.
func (bd *build) fromName(s *Stage) (string, error) {
	if !bd.df.expand {
		return s.From, nil
	}
	v, _, err := bd.lex.ProcessWord(s.From, mapEnv(bd.global))
	if err != nil {
		return "", &SyntaxError{Line: s.Line, Cmd: "FROM", Msg: err.Error()}
	}
	if v == "" {
		return "", &SyntaxError{Line: s.Line, Cmd: "FROM", Msg: fmt.Sprintf("%q names no image once its variables are substituted", s.From)}
	}
	return v, nil
}

// stageRef finds the stage a FROM or COPY --from before stage i names: by
// name, or by index for --from. -1 when none does.
func (bd *build) stageRef(ref string, i int, byIndex bool) int {
	for j := range i {
		if bd.df.Stages[j].Name != "" && strings.EqualFold(bd.df.Stages[j].Name, ref) {
			return j
		}
	}
	if byIndex {
		if n, err := strconv.Atoi(ref); err == nil && n >= 0 && n < i {
			return n
		}
	}
	return -1
}

// neededStages marks the stages the last one depends on: the ones the
// template is built from.
func (bd *build) neededStages() ([]bool, error) {
	deps := make([][]int, len(bd.df.Stages))
	for i, s := range bd.df.Stages {
		from, err := bd.fromName(s)
		if err != nil {
			return nil, err
		}
		if j := bd.stageRef(from, i, false); j >= 0 {
			deps[i] = append(deps[i], j)
		}
		for _, st := range s.Steps {
			if c, ok := st.op.(*copyOp); ok && c.from != "" {
				if j := bd.stageRef(c.from, i, true); j >= 0 {
					deps[i] = append(deps[i], j)
				} else if strings.EqualFold(c.from, s.Name) && s.Name != "" {
					return nil, &SyntaxError{Line: st.Line, Cmd: st.Cmd, Msg: fmt.Sprintf("--from=%s names the stage itself", c.from)}
				}
			}
		}
	}
	needed := make([]bool, len(bd.df.Stages))
	var mark func(int)
	mark = func(i int) {
		if needed[i] {
			return
		}
		needed[i] = true
		for _, j := range deps[i] {
			mark(j)
		}
	}
	mark(len(bd.df.Stages) - 1)
	return needed, nil
}

// runStage builds stage i: its FROM, then its steps.
func (b *Builder) runStage(ctx context.Context, bd *build, i int) error {
	s := bd.df.Stages[i]
	st := &buildState{b: bd, stage: s, args: map[string]string{}, req: bd.req, log: bd.log, res: bd.res}
	bd.n++
	bd.log.setStep(s.Label)
	bd.log.infof("Step %d/%d : %s", bd.n, bd.of, s.Text)
	if err := b.from(ctx, st, i); err != nil {
		return &StepError{Step: s.Label, Err: fmt.Errorf("step %d/%d (%sFROM): %w", bd.n, bd.of, lineOf(s.Line), err)}
	}
	for _, step := range s.Steps {
		bd.n++
		bd.log.setStep(step.Label)
		bd.log.infof("Step %d/%d : %s", bd.n, bd.of, step.Text)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.step(ctx, st, step); err != nil {
			return &StepError{Step: step.Label, Err: fmt.Errorf("step %d/%d (%s%s): %w", bd.n, bd.of, lineOf(step.Line), step.Cmd, err)}
		}
	}
	bd.stages[i] = st
	return nil
}

// lineOf names a Dockerfile line in an error, if there is one.
func lineOf(line int) string {
	if line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d, ", line)
}
