package template

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Instruction is one Dockerfile instruction as written, with its continuation lines
// joined. Variables are not expanded yet: that needs the build's ARG and ENV state.
type Instruction struct {
	// Line is the 1-based line the instruction starts on.
	Line int
	// Cmd is the instruction's name in upper case, e.g. "RUN".
	Cmd string
	// Flags are the leading --name=value options (RUN, COPY, ADD, FROM), by name
	// without the dashes. A flag given without a value maps to "".
	Flags map[string]string
	// Args is the text after the name and the flags.
	Args string
	// JSON is the exec form's argument list when Args is a JSON array of strings
	// (RUN, CMD, ENTRYPOINT, COPY, ADD); nil for the shell form.
	JSON []string
}

// Original renders the instruction on one line, as the build log shows it.
func (in Instruction) Original() string {
	var b strings.Builder
	b.WriteString(in.Cmd)
	for _, k := range sortedKeys(in.Flags) {
		b.WriteString(" --" + k)
		if v := in.Flags[k]; v != "" {
			b.WriteString("=" + v)
		}
	}
	if in.Args != "" {
		b.WriteString(" " + in.Args)
	}
	return b.String()
}

// SyntaxError is a Dockerfile the builder cannot use: bad syntax or an instruction
// Lelantos does not support. It wraps ErrInvalid.
type SyntaxError struct {
	Line int
	// Cmd is the instruction concerned, when there is one.
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

// instructionSpec says how one supported instruction is parsed.
type instructionSpec struct {
	flags    []string // allowed flags
	json     bool     // accepts the JSON exec form
	needArgs bool
}

var supported = map[string]instructionSpec{
	"FROM":       {flags: []string{"platform"}, needArgs: true},
	"RUN":        {json: true, needArgs: true},
	"COPY":       {flags: []string{"chown", "chmod", "link"}, json: true, needArgs: true},
	"ADD":        {flags: []string{"chown", "chmod", "link"}, json: true, needArgs: true},
	"ENV":        {needArgs: true},
	"ARG":        {needArgs: true},
	"WORKDIR":    {needArgs: true},
	"USER":       {needArgs: true},
	"CMD":        {json: true},
	"ENTRYPOINT": {json: true},
	"EXPOSE":     {needArgs: true},
	"LABEL":      {needArgs: true},
}

// unsupported names Dockerfile instructions that exist but Lelantos refuses, with why.
var unsupported = map[string]string{
	"HEALTHCHECK": "not supported: templates use a ready command (ReadyCmd) instead",
	"ONBUILD":     "not supported",
	"VOLUME":      "not supported: sandboxes have no volumes",
	"STOPSIGNAL":  "not supported",
	"SHELL":       "not supported: RUN always uses /bin/sh -c",
	"MAINTAINER":  "not supported (deprecated): use LABEL",
}

var (
	directiveRE = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$`)
	heredocRE   = regexp.MustCompile(`<<-?\s*["']?[A-Za-z_][A-Za-z0-9_]*["']?`)
)

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	Instructions []Instruction
	// Escape is the escape character: '\\' unless an escape directive says '`'.
	Escape byte
}

// Parse reads a Dockerfile. It checks the syntax and that every instruction is one
// Lelantos supports, and that the file is a single stage starting with FROM (ARGs may
// come before it). Errors are *SyntaxError naming the line.
func Parse(dockerfile string) (*Dockerfile, error) {
	lines := strings.Split(strings.ReplaceAll(dockerfile, "\r\n", "\n"), "\n")
	escape := byte('\\')
	i := 0
	// Parser directives: only at the very top, before any other line.
	for ; i < len(lines); i++ {
		m := directiveRE.FindStringSubmatch(lines[i])
		if m == nil {
			break
		}
		if strings.EqualFold(m[1], "escape") {
			switch m[2] {
			case "\\":
			case "`":
				escape = '`'
			default:
				return nil, &SyntaxError{Line: i + 1, Msg: fmt.Sprintf("invalid escape directive %q: want \\ or `", m[2])}
			}
		}
	}
	var out []Instruction
	for i < len(lines) {
		start := i
		text, next := logicalLine(lines, i, escape)
		i = next
		if text == "" {
			continue
		}
		in, err := parseInstruction(start+1, text)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	if err := checkStages(out); err != nil {
		return nil, err
	}
	return &Dockerfile{Instructions: out, Escape: escape}, nil
}

// logicalLine joins the physical lines from i on into one instruction's text: a line
// ending in the escape character continues on the next; comment and empty lines inside
// a continuation are dropped. It returns "" for a comment or blank line.
func logicalLine(lines []string, i int, escape byte) (string, int) {
	first := strings.TrimSpace(lines[i])
	if first == "" || first[0] == '#' {
		return "", i + 1
	}
	var b strings.Builder
	for ; i < len(lines); i++ {
		l := lines[i]
		if b.Len() > 0 {
			t := strings.TrimSpace(l)
			if t == "" || t[0] == '#' {
				continue
			}
		}
		trimmed := strings.TrimRight(l, " \t")
		if strings.HasSuffix(trimmed, string(escape)) {
			b.WriteString(strings.TrimSuffix(trimmed, string(escape)))
			continue
		}
		b.WriteString(l)
		return strings.TrimSpace(b.String()), i + 1
	}
	// A continuation at the end of the file ends the instruction.
	return strings.TrimSpace(b.String()), i
}

func parseInstruction(line int, text string) (Instruction, error) {
	name, rest := cutWord(text)
	cmd := strings.ToUpper(name)
	if why, ok := unsupported[cmd]; ok {
		return Instruction{}, &SyntaxError{Line: line, Cmd: cmd, Msg: why}
	}
	spec, ok := supported[cmd]
	if !ok {
		return Instruction{}, &SyntaxError{Line: line, Cmd: cmd, Msg: "unknown instruction"}
	}
	in := Instruction{Line: line, Cmd: cmd, Flags: map[string]string{}}
	for strings.HasPrefix(rest, "--") && len(spec.flags) > 0 {
		word, after := cutWord(rest)
		k, v, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
		if !slices.Contains(spec.flags, k) {
			return Instruction{}, &SyntaxError{Line: line, Cmd: cmd, Msg: fmt.Sprintf("flag --%s is not supported", k)}
		}
		in.Flags[k] = v
		rest = after
	}
	if strings.HasPrefix(rest, "--") && cmd == "RUN" {
		word, _ := cutWord(rest)
		return Instruction{}, &SyntaxError{Line: line, Cmd: cmd, Msg: fmt.Sprintf("flag %s is not supported", word)}
	}
	in.Args = rest
	if spec.needArgs && rest == "" {
		return Instruction{}, &SyntaxError{Line: line, Cmd: cmd, Msg: "needs at least one argument"}
	}
	if spec.json && strings.HasPrefix(rest, "[") {
		var list []string
		if err := json.Unmarshal([]byte(rest), &list); err == nil {
			if list == nil {
				list = []string{}
			}
			in.JSON = list
		}
	}
	if (cmd == "RUN" || cmd == "COPY" || cmd == "ADD") && in.JSON == nil && heredocRE.MatchString(rest) && !strings.Contains(rest, "<<<") {
		return Instruction{}, &SyntaxError{Line: line, Cmd: cmd, Msg: "heredocs (<<EOF) are not supported: put the text in a file and COPY it"}
	}
	return in, nil
}

// checkStages enforces one stage: optional ARGs, then FROM, then no further FROM.
func checkStages(ins []Instruction) error {
	seenFrom := false
	for _, in := range ins {
		switch {
		case in.Cmd == "FROM" && seenFrom:
			return &SyntaxError{Line: in.Line, Cmd: in.Cmd, Msg: "multi-stage builds are not supported: use one FROM"}
		case in.Cmd == "FROM":
			seenFrom = true
		case !seenFrom && in.Cmd != "ARG":
			return &SyntaxError{Line: in.Line, Cmd: in.Cmd, Msg: "comes before FROM (only ARG may)"}
		}
	}
	if !seenFrom {
		line := 1
		if len(ins) > 0 {
			line = ins[len(ins)-1].Line
		}
		return &SyntaxError{Line: line, Msg: "no FROM instruction"}
	}
	return nil
}

// cutWord splits s at its first run of blanks, trimming both parts.
func cutWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	j := strings.IndexAny(s, " \t")
	if j < 0 {
		return s, ""
	}
	return s[:j], strings.TrimSpace(s[j:])
}
