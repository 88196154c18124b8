package template

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Spec is a template in E2B's step form, as the e2b SDK's Template builder
// sends it: a base (an image or a template), steps, and the start and ready
// commands (in BuildRequest).
type Spec struct {
	// FromImage is an image reference; FromTemplate a template's name.
	// Exactly one is set.
	FromImage, FromTemplate string
	// Registry are credentials for FromImage's registry.
	Registry *RegistryAuth
	// Force rebuilds every step instead of using the cache.
	Force bool
	Steps []SpecStep
}

// SpecStep is one of E2B's template steps.
type SpecStep struct {
	// Type is RUN, COPY (or ADD), ENV (or ARG), WORKDIR or USER, in any case.
	Type string
	Args []string
	// FilesHash names the uploaded archive a COPY step copies from.
	FilesHash string
	// Force rebuilds this step and the ones after it.
	Force bool
}

// RegistryAuth are credentials for an image's registry.
type RegistryAuth struct {
	Username, Password string
}

// FilesHashRE is the form of an uploaded archive's name: E2B's hex SHA-256.
var FilesHashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// specInvalid is a Spec error naming the field.
func specInvalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Dockerfile checks the step form and converts it into a one-stage build.
// Errors wrap ErrInvalid and name the field (steps[2].args).
func (s *Spec) Dockerfile() (*Dockerfile, error) {
	st := &Stage{Label: "base"}
	switch {
	case (s.FromImage == "") == (s.FromTemplate == ""):
		return nil, specInvalid("fromImage", "exactly one of fromImage and fromTemplate must be given")
	case s.FromImage != "":
		st.From, st.fromImage, st.Text = s.FromImage, true, "FROM "+s.FromImage
		st.registry = s.Registry
	default:
		st.From, st.fromTemplate, st.Text = s.FromTemplate, true, "FROM template "+s.FromTemplate
	}
	if strings.ContainsAny(st.From, " \t\n\x00") {
		return nil, specInvalid("from", "%q is not an image or template name", st.From)
	}
	for i, step := range s.Steps {
		o, err := specOp(step)
		if err != nil {
			return nil, fmt.Errorf("%w: steps[%d]: %v", ErrInvalid, i, err)
		}
		typ := strings.ToUpper(step.Type)
		st.Steps = append(st.Steps, &Step{Cmd: typ, Label: strconv.Itoa(i + 1), Text: specText(typ, step.Args), op: o,
			force: step.Force || s.Force})
	}
	return &Dockerfile{Stages: []*Stage{st}, Escape: '\\'}, nil
}

// specText renders a step for the log.
func specText(typ string, args []string) string {
	var shown []string
	for _, a := range args {
		if a != "" {
			shown = append(shown, a)
		}
	}
	return strings.TrimSpace(typ + " " + strings.Join(shown, " "))
}

// specOp converts one step.
func specOp(step SpecStep) (op, error) {
	args := step.Args
	for j, a := range args {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("args[%d]: contains a NUL byte", j)
		}
	}
	switch strings.ToUpper(step.Type) {
	case "RUN":
		if len(args) < 1 || len(args) > 2 || strings.TrimSpace(args[0]) == "" {
			return nil, fmt.Errorf("args: RUN takes a command and an optional user, got %d arguments", len(args))
		}
		o := &runOp{shell: true, args: []string{args[0]}}
		if len(args) == 2 {
			o.user = args[1]
		}
		return o, nil
	case "COPY", "ADD":
		if len(args) < 2 || len(args) > 4 || args[0] == "" || args[1] == "" {
			return nil, fmt.Errorf("args: COPY takes a source, a destination, an optional user and mode, got %d arguments", len(args))
		}
		if !FilesHashRE.MatchString(step.FilesHash) {
			return nil, fmt.Errorf("filesHash: %q must be 64 lower-case hex digits (the hash the SDK uploads the files under)", step.FilesHash)
		}
		o := &copyOp{sources: []string{args[0]}, dest: args[1], files: step.FilesHash}
		if len(args) > 2 {
			o.chown = args[2]
		}
		if len(args) > 3 && args[3] != "" {
			if n, err := strconv.ParseUint(args[3], 8, 32); err != nil || n > 0o7777 {
				return nil, fmt.Errorf("args[3]: mode %q is not an octal file mode", args[3])
			}
			o.chmod = args[3]
		}
		return o, nil
	case "ENV", "ARG":
		if len(args) == 0 || len(args)%2 != 0 {
			return nil, fmt.Errorf("args: %s takes pairs of a name and a value, got %d arguments", strings.ToUpper(step.Type), len(args))
		}
		var pairs []keyValue
		for j := 0; j < len(args); j += 2 {
			if args[j] == "" || strings.ContainsAny(args[j], "= \t\n") {
				return nil, fmt.Errorf("args[%d]: invalid variable name %q", j, args[j])
			}
			pairs = append(pairs, keyValue{Key: args[j], Value: args[j+1]})
		}
		if strings.EqualFold(step.Type, "ARG") {
			var decls []argDecl
			for _, p := range pairs {
				decls = append(decls, argDecl{Key: p.Key, Value: p.Value, HasValue: true})
			}
			return &argOp{args: decls}, nil
		}
		return &envOp{pairs: pairs}, nil
	case "WORKDIR":
		if len(args) != 1 || args[0] == "" {
			return nil, fmt.Errorf("args: WORKDIR takes one path, got %d arguments", len(args))
		}
		return &workdirOp{path: args[0]}, nil
	case "USER":
		if len(args) < 1 || len(args) > 2 || !userRE.MatchString(args[0]) {
			return nil, fmt.Errorf("args: USER takes a user name (and \"true\" for sudo), got %q", args)
		}
		o := &userOp{user: args[0], create: true}
		if len(args) == 2 {
			b, err := strconv.ParseBool(args[1])
			if err != nil {
				return nil, fmt.Errorf("args[1]: want true or false, got %q", args[1])
			}
			o.sudo = b
		}
		return o, nil
	}
	return nil, fmt.Errorf("type: unknown step type %q (want RUN, COPY, ADD, ENV, ARG, WORKDIR or USER)", step.Type)
}

// userRE is a user (and group) a USER step may name: a name it can create.
var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}(:[a-z0-9_][a-z0-9_-]{0,31})?$|^[0-9]+(:[0-9]+)?$`)
