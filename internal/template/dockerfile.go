package template

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// SyntaxError is a Dockerfile the builder cannot use: bad syntax, or an
// instruction that cannot apply to a sandbox template. It wraps ErrInvalid.
type SyntaxError struct {
	// Line is the 1-based line of the instruction concerned.
	Line int
	// Cmd is the instruction concerned in upper case, when there is one.
	Cmd string
	Msg string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	if e.Cmd != "" {
		return fmt.Sprintf("Dockerfile line %d: %s: %s", e.Line, e.Cmd, e.Msg)
	}
	return fmt.Sprintf("Dockerfile line %d: %s", e.Line, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *SyntaxError) Unwrap() error { return ErrInvalid }

// Dockerfile is a template definition ready to build: stages of steps, parsed
// from a Dockerfile (Parse) or made from E2B's step form (Spec).
type Dockerfile struct {
	// Stages are in order; the last one is the template.
	Stages []*Stage
	// MetaArgs are the ARGs before the first FROM, for FROM lines only.
	MetaArgs []argDecl
	// Escape is the escape character: '\\' unless an escape directive says '`'.
	Escape rune
	// expand is false for E2B's step form, whose values are taken as given
	// (but ENV, whose values may name other variables as in a Dockerfile).
	expand bool
}

// Stage is one FROM and the steps after it.
type Stage struct {
	// Name is the stage's AS name, lower-cased; "" when it has none.
	Name string
	// From is the base as written: an image, a template, an earlier stage,
	// scratch or base.
	From string
	// Platform is FROM's --platform as written.
	Platform string
	// Line is the FROM's line (0 for the step form).
	Line int
	// Label names the FROM in a failed build's reason: "base".
	Label string
	// Text is the FROM as the log shows it.
	Text  string
	Steps []*Step
	// fromImage, for the step form, says From is an image reference and
	// never a template; fromTemplate that it is a template.
	fromImage, fromTemplate bool
	// registry are the credentials the step form gives for From.
	registry *RegistryAuth
}

// Step is one instruction of a stage.
type Step struct {
	// Line is its line in the Dockerfile (0 for the step form).
	Line int
	// Cmd is the instruction's name in upper case, e.g. "RUN".
	Cmd string
	// Label names the step in a failed build's reason: its 1-based number in
	// the step form, its line in a Dockerfile.
	Label string
	// Text is the instruction as the log shows it.
	Text string
	op   op
	// force rebuilds the step and those after it instead of using the cache.
	force bool
}

// Parse reads a Dockerfile with BuildKit's parser and checks that every
// instruction is one a sandbox template can apply. Errors are *SyntaxError
// naming the line.
func Parse(text string) (*Dockerfile, error) {
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return nil, &SyntaxError{Line: errorLine(err, 1), Msg: cleanError(err)}
	}
	df := &Dockerfile{Escape: res.EscapeToken, expand: true}
	names := map[string]int{}
	for _, n := range res.AST.Children {
		cmd := strings.ToUpper(n.Value)
		v, err := instructions.ParseInstruction(n)
		if err != nil {
			var unknown *instructions.UnknownInstructionError
			if errors.As(err, &unknown) {
				return nil, &SyntaxError{Line: n.StartLine, Cmd: cmd, Msg: "unknown instruction"}
			}
			return nil, &SyntaxError{Line: errorLine(err, n.StartLine), Cmd: cmd, Msg: cleanError(err)}
		}
		switch c := v.(type) {
		case *instructions.Stage:
			s := &Stage{Name: strings.ToLower(c.Name), From: c.BaseName, Platform: c.Platform, Line: n.StartLine,
				Label: "base", Text: c.SourceCode}
			if s.Name != "" {
				if prev, dup := names[s.Name]; dup {
					return nil, &SyntaxError{Line: n.StartLine, Cmd: cmd, Msg: fmt.Sprintf("stage name %q is already used on line %d", s.Name, prev)}
				}
				names[s.Name] = n.StartLine
			}
			df.Stages = append(df.Stages, s)
		case *instructions.ArgCommand:
			if len(df.Stages) == 0 {
				df.MetaArgs = append(df.MetaArgs, argDecls(c)...)
				continue
			}
			df.add(n, cmd, &argOp{args: argDecls(c)}, c.String())
		case instructions.Command:
			if len(df.Stages) == 0 {
				return nil, &SyntaxError{Line: n.StartLine, Cmd: cmd, Msg: "comes before FROM (only ARG may)"}
			}
			o, err := opOf(c)
			if err != nil {
				return nil, &SyntaxError{Line: n.StartLine, Cmd: cmd, Msg: err.Error()}
			}
			df.add(n, cmd, o, commandText(c))
		default:
			return nil, &SyntaxError{Line: n.StartLine, Cmd: cmd, Msg: "unknown instruction"}
		}
	}
	if len(df.Stages) == 0 {
		line := 1
		if k := len(res.AST.Children); k > 0 {
			line = res.AST.Children[k-1].StartLine
		}
		return nil, &SyntaxError{Line: line, Msg: "no FROM instruction"}
	}
	return df, nil
}

// add appends a step to the last stage.
func (df *Dockerfile) add(n *parser.Node, cmd string, o op, text string) {
	s := df.Stages[len(df.Stages)-1]
	s.Steps = append(s.Steps, &Step{Line: n.StartLine, Cmd: cmd, Label: fmt.Sprint(n.StartLine), Text: text, op: o})
}

// commandText is an instruction as written, on one line.
func commandText(c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok {
		return strings.Join(strings.Fields(s.String()), " ")
	}
	return strings.ToUpper(c.Name())
}

// errorLine is the first line a BuildKit error names, else def.
func errorLine(err error, def int) int {
	var le *parser.LocationError
	if errors.As(err, &le) {
		for _, r := range le.Locations {
			if len(r) > 0 && r[0].Start.Line > 0 {
				return r[0].Start.Line
			}
		}
	}
	return def
}

// cleanError is a BuildKit error's message without its location wrapper.
func cleanError(err error) string {
	var le *parser.LocationError
	if errors.As(err, &le) && le.Unwrap() != nil {
		err = le.Unwrap()
	}
	msg := err.Error()
	if i := strings.Index(msg, "dockerfile parse error on line "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			msg = msg[i+j+2:]
		}
	}
	return msg
}

// argDecls converts an ARG's declarations.
func argDecls(c *instructions.ArgCommand) []argDecl {
	out := make([]argDecl, 0, len(c.Args))
	for _, a := range c.Args {
		d := argDecl{Key: a.Key}
		if a.Value != nil {
			d.Value, d.HasValue = *a.Value, true
		}
		out = append(out, d)
	}
	return out
}
