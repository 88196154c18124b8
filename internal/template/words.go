package template

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// vars looks up a build variable (ARG or ENV); ok is false when it is not set.
type vars func(name string) (value string, ok bool)

// wordLexer does what Dockerfile instructions do to their arguments before use:
// quote removal, escapes and $VAR / ${VAR} expansion with the shell's :- :+ - + :? ?
// modifiers. It never runs anything.
type wordLexer struct {
	escape byte
	vars   vars
}

var errUnterminated = errors.New("unterminated quote or ${")

// word processes s as one word: blanks are kept.
func (l wordLexer) word(s string) (string, error) {
	w, err := l.process(s, false)
	if err != nil {
		return "", err
	}
	return strings.Join(w, ""), nil
}

// words processes s and splits it at unquoted blanks.
func (l wordLexer) words(s string) ([]string, error) {
	return l.process(s, true)
}

func (l wordLexer) process(s string, split bool) ([]string, error) {
	var (
		out    []string
		cur    strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case split && (c == ' ' || c == '\t' || c == '\n'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == l.escape:
			if i+1 < len(s) {
				cur.WriteByte(s[i+1])
				i += 2
			} else {
				cur.WriteByte(c)
				i++
			}
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errUnterminated
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 2
			inWord = true
		case c == '"':
			n, err := l.doubleQuoted(s[i+1:], &cur)
			if err != nil {
				return nil, err
			}
			i += n + 1
			inWord = true
		case c == '$':
			v, n, err := l.dollar(s[i:])
			if err != nil {
				return nil, err
			}
			cur.WriteString(v)
			inWord = inWord || v != ""
			i += n
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	if inWord || !split {
		out = append(out, cur.String())
	}
	return out, nil
}

// doubleQuoted reads the inside of a "..." string into b and returns how many bytes
// it used, the closing quote included.
func (l wordLexer) doubleQuoted(s string, b *strings.Builder) (int, error) {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '"':
			return i + 1, nil
		case c == l.escape && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '$' || s[i+1] == l.escape):
			b.WriteByte(s[i+1])
			i += 2
		case c == '$':
			v, n, err := l.dollar(s[i:])
			if err != nil {
				return 0, err
			}
			b.WriteString(v)
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	return 0, errUnterminated
}

// dollar expands the reference at the start of s ("$NAME" or "${...}") and returns
// its value and length. A "$" not followed by a name is kept as it is.
func (l wordLexer) dollar(s string) (string, int, error) {
	if len(s) < 2 {
		return "$", 1, nil
	}
	if s[1] != '{' {
		n := 1
		for n < len(s) && isNameByte(s[n], n == 1) {
			n++
		}
		if n == 1 {
			return "$", 1, nil
		}
		v, _ := l.vars(s[1:n])
		return v, n, nil
	}
	end := matchingBrace(s[2:])
	if end < 0 {
		return "", 0, errUnterminated
	}
	body := s[2 : 2+end]
	n := 0
	for n < len(body) && isNameByte(body[n], n == 0) {
		n++
	}
	name, op := body[:n], body[n:]
	if name == "" {
		return "", 0, fmt.Errorf("bad substitution ${%s}", body)
	}
	v, set := l.vars(name)
	used := 2 + end + 1
	if op == "" {
		return v, used, nil
	}
	colon := strings.HasPrefix(op, ":")
	op = strings.TrimPrefix(op, ":")
	if op == "" {
		return "", 0, fmt.Errorf("bad substitution ${%s}", body)
	}
	present := set && (!colon || v != "")
	arg, err := l.word(op[1:])
	if err != nil {
		return "", 0, err
	}
	switch op[0] {
	case '-':
		if present {
			return v, used, nil
		}
		return arg, used, nil
	case '+':
		if present {
			return arg, used, nil
		}
		return "", used, nil
	case '?':
		if present {
			return v, used, nil
		}
		if arg == "" {
			arg = "is not set"
		}
		return "", 0, fmt.Errorf("%s: %s", name, arg)
	}
	return "", 0, fmt.Errorf("unsupported substitution ${%s}", body)
}

// matchingBrace returns the index of the "}" closing a "${" whose body starts s.
func matchingBrace(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// keyValues parses the KEY=VALUE words of ENV, ARG and LABEL. With allowBare, a word
// without "=" is a name with no value (ARG NAME); legacy is the old "ENV KEY value"
// form, allowed when the first word has no "=".
func (l wordLexer) keyValues(args string, allowBare, legacy bool) ([]keyValue, error) {
	first, rest := cutWord(args)
	if legacy && !strings.Contains(first, "=") && rest != "" {
		v, err := l.word(rest)
		if err != nil {
			return nil, err
		}
		return []keyValue{{Key: first, Value: v, HasValue: true}}, nil
	}
	ws, err := l.words(args)
	if err != nil {
		return nil, err
	}
	out := make([]keyValue, 0, len(ws))
	for _, w := range ws {
		k, v, ok := strings.Cut(w, "=")
		if !ok && !allowBare {
			return nil, fmt.Errorf("%q is not KEY=VALUE", w)
		}
		if k == "" {
			return nil, fmt.Errorf("%q has an empty name", w)
		}
		out = append(out, keyValue{Key: k, Value: v, HasValue: ok})
	}
	return out, nil
}

// keyValue is one KEY=VALUE of ENV, ARG or LABEL.
type keyValue struct {
	Key, Value string
	HasValue   bool
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
