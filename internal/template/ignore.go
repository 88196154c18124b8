package template

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"lelantos.dev/lelantos/internal/saferoot"
)

// ignoreRule is one line of a .dockerignore.
type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

// ignorer says which context paths a .dockerignore excludes.
type ignorer []ignoreRule

// maxIgnoreFile bounds the size of a .dockerignore.
const maxIgnoreFile = 1 << 20

// loadIgnore reads the context's .dockerignore; none means nothing is excluded. A
// .dockerignore that is a link resolves inside the context; one leading nowhere
// there is an error.
func loadIgnore(bctx *saferoot.Root) (ignorer, error) {
	data, err := bctx.ReadFile(".dockerignore", maxIgnoreFile)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := bctx.Lstat(".dockerignore"); lerr != nil {
			return nil, nil
		}
		return nil, errors.New("read .dockerignore: it is a link to nothing in the build context")
	}
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	var rules ignorer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxIgnoreFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.negate, line = true, strings.TrimSpace(line[1:])
		}
		line = strings.TrimPrefix(path.Clean("/"+line), "/")
		re, err := globRegexp(line)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore pattern %q: %w", line, err)
		}
		r.re = re
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

// excluded reports whether the context-relative path rel is excluded: the last rule
// matching it, or one of its parent directories, decides.
func (ig ignorer) excluded(rel string) bool {
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	if rel == "" || len(ig) == 0 {
		return false
	}
	var prefixes []string
	for i := range len(rel) {
		if rel[i] == '/' {
			prefixes = append(prefixes, rel[:i])
		}
	}
	prefixes = append(prefixes, rel)
	out := false
	for _, r := range ig {
		for _, p := range prefixes {
			if r.re.MatchString(p) {
				out = !r.negate
				break
			}
		}
	}
	return out
}

// globRegexp turns a Docker path pattern into a regular expression: * and ? stay
// within one path element, ** crosses any number, [...] is a class.
func globRegexp(pat string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '*' && strings.HasPrefix(pat[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 2
		case c == '*' && strings.HasPrefix(pat[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(pat[i:], ']')
			if end < 0 {
				return nil, errors.New("unterminated [")
			}
			class := pat[i+1 : i+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end
		case c == '\\' && i+1 < len(pat):
			b.WriteString(regexp.QuoteMeta(pat[i+1 : i+2]))
			i++
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
