package template

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"lelantos.dev/lelantos/internal/saferoot"
)

// ignorer says which context paths a .dockerignore (or COPY --exclude)
// excludes, with Docker's own pattern matcher; nil excludes nothing.
type ignorer struct {
	pm *patternmatcher.PatternMatcher
}

// maxIgnoreFile bounds the size of a .dockerignore.
const maxIgnoreFile = 1 << 20

// loadIgnore reads the context's .dockerignore; none means nothing is excluded. A
// .dockerignore that is a link resolves inside the context; one leading nowhere
// there is an error.
func loadIgnore(bctx *saferoot.Root) (*ignorer, error) {
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
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return newIgnorer(".dockerignore", patterns)
}

// newIgnorer compiles patterns; what names them in errors.
func newIgnorer(what string, patterns []string) (*ignorer, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &ignorer{pm: pm}, nil
}

// excluded reports whether the context-relative path rel is excluded: by a
// pattern matching it or one of its parent directories, the last matching
// pattern deciding.
func (ig *ignorer) excluded(rel string) bool {
	if ig == nil {
		return false
	}
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	if rel == "" {
		return false
	}
	out, err := ig.pm.MatchesOrParentMatches(rel)
	return err == nil && out
}

// skipsDirs reports whether an excluded directory can be skipped whole: no
// "!" pattern may bring back something below it.
func (ig *ignorer) skipsDirs() bool { return ig == nil || !ig.pm.Exclusions() }

// excluder says which source paths a COPY leaves out.
type excluder interface {
	excluded(rel string) bool
	skipsDirs() bool
}

// either excludes what any of its ignorers excludes.
type either []*ignorer

func (e either) excluded(rel string) bool {
	for _, ig := range e {
		if ig.excluded(rel) {
			return true
		}
	}
	return false
}

func (e either) skipsDirs() bool {
	for _, ig := range e {
		if !ig.skipsDirs() {
			return false
		}
	}
	return true
}
