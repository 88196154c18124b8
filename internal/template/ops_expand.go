package template

import (
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func expandPairs(pairs []keyValue, x expander) ([]keyValue, error) {
	out := make([]keyValue, 0, len(pairs))
	for _, p := range pairs {
		k, err := x(p.Key)
		if err != nil {
			return nil, err
		}
		v, err := x(p.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, keyValue{Key: k, Value: v})
	}
	return out, nil
}

func expandAll(words []string, x expander) ([]string, error) {
	out := make([]string, 0, len(words))
	for _, w := range words {
		v, err := x(w)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (o *envOp) expand(x expander) (err error) { o.pairs, err = expandPairs(o.pairs, x); return }

func (o *labelOp) expand(x expander) (err error) { o.pairs, err = expandPairs(o.pairs, x); return }

func (o *argOp) expand(expander) error { return nil }

func (o *exposeOp) expand(x expander) (err error) {
	o.ports, err = expandAll(o.ports, x)
	return
}

func (o *workdirOp) expand(x expander) (err error) { o.path, err = x(o.path); return }

func (o *userOp) expand(x expander) (err error) { o.user, err = x(o.user); return }

func (o *cmdOp) expand(expander) error { return nil }

func (o *healthOp) expand(expander) error { return nil }

func (o *shellOp) expand(expander) error { return nil }

func (o *stopOp) expand(x expander) (err error) { o.signal, err = x(o.signal); return }

func (o *volumeOp) expand(x expander) (err error) {
	o.paths, err = expandAll(o.paths, x)
	return
}

// expand substitutes variables in the mounts only: the shell expands the
// command itself.
func (o *runOp) expand(x expander) error {
	if o.raw == nil {
		return nil
	}
	if err := o.raw.Expand(instructions.SingleWordExpander(x)); err != nil {
		return err
	}
	o.scratch = nil
	for _, m := range instructions.GetMounts(o.raw) {
		if err := checkMount(m); err != nil {
			return err
		}
		if !secretLike(m) {
			o.scratch = append(o.scratch, m.Target)
		}
	}
	return nil
}

func (o *copyOp) expand(x expander) (err error) {
	if o.chown, err = x(o.chown); err != nil {
		return err
	}
	if o.chmod, err = x(o.chmod); err != nil {
		return err
	}
	if o.sources, err = expandAll(o.sources, x); err != nil {
		return err
	}
	if o.exclude, err = expandAll(o.exclude, x); err != nil {
		return err
	}
	o.dest, err = x(o.dest)
	return err
}

// clone copies o so that expanding it leaves the parsed Dockerfile as it is
// (a stage may be built again from the same Dockerfile).
func clone(o op) op {
	switch o := o.(type) {
	case *runOp:
		c := *o
		if o.raw != nil {
			raw := *o.raw
			c.raw = &raw
		}
		return &c
	case *envOp:
		c := *o
		return &c
	case *labelOp:
		c := *o
		return &c
	case *exposeOp:
		c := *o
		return &c
	case *workdirOp:
		c := *o
		return &c
	case *userOp:
		c := *o
		return &c
	case *stopOp:
		c := *o
		return &c
	case *volumeOp:
		c := *o
		return &c
	case *copyOp:
		c := *o
		c.contents = append([]instructions.SourceContent(nil), o.contents...)
		return &c
	}
	return o
}

// heredocBody is a RUN heredoc's text as the shell gets it: BuildKit's rules
// (one heredoc is its content, or a script when it starts with #!; several
// are given to the shell as written).
func (o *runOp) heredocBody() (cmd string, script *instructions.ShellInlineFile) {
	if len(o.files) == 0 {
		return strings.Join(o.args, " "), nil
	}
	if h := parser.MustParseHeredoc(o.args[0]); h != nil {
		f := o.files[0]
		if f.Chomp {
			f.Data = parser.ChompHeredocContent(f.Data)
		}
		if strings.HasPrefix(f.Data, "#!") {
			return "", &f
		}
		return f.Data, nil
	}
	full := o.args[0]
	for _, f := range o.files {
		full += "\n" + f.Data + f.Name
	}
	return full, nil
}
