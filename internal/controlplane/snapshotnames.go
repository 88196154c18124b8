package controlplane

import (
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// E2B's alphabets of the parts of a name.
var (
	refAliasRE = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)
	refTagRE   = regexp.MustCompile(`^[a-z0-9_.-]{1,63}$`)
)

// templateRef is a name as E2B writes them, [namespace/]alias[:tag]: the
// namespace is a team's slug, the tag defaults to DefaultTag (the tag of a
// template's current build).
type templateRef struct {
	Namespace, Alias, Tag string
	// Tagged is set when the name gave a tag.
	Tagged bool
}

// parseRef reads a name, trimmed and lower-cased. The message of its error
// says what is wrong, for "Invalid name: ...".
func parseRef(name string) (templateRef, error) {
	s := strings.ToLower(strings.TrimSpace(name))
	var r templateRef
	if ns, rest, ok := strings.Cut(s, "/"); ok {
		if !refAliasRE.MatchString(ns) {
			return r, invalidf("Invalid name: namespace %q must be 1-63 of a-z, 0-9, '-' and '_'", ns)
		}
		r.Namespace, s = ns, rest
	}
	r.Alias, r.Tag, r.Tagged = s, DefaultTag, false
	if alias, tag, ok := strings.Cut(s, ":"); ok {
		if !refTagRE.MatchString(tag) {
			return r, invalidf("Invalid name: tag %q must be 1-63 of a-z, 0-9, '-', '_' and '.'", tag)
		}
		r.Alias, r.Tag, r.Tagged = alias, tag, true
	}
	if !refAliasRE.MatchString(r.Alias) {
		return r, invalidf("Invalid name: %q must be 1-63 of a-z, 0-9, '-' and '_'", r.Alias)
	}
	if _, err := uuid.Parse(r.Alias); err == nil {
		return r, invalidf("Invalid name: %q must not be a UUID", r.Alias)
	}
	return r, nil
}

// snapshotID is the ID clients use for a snapshot template: the first name and
// the tag when it is named, else the template's ID and the tag.
func snapshotID(slug, templateID, name, tag string) string {
	if name == "" || name == templateID {
		return templateID + ":" + tag
	}
	return slug + "/" + name + ":" + tag
}

// snapshotNames are the names of a snapshot template: none when unnamed.
func snapshotNames(slug, templateID, name string) []string {
	if name == "" || name == templateID {
		return []string{}
	}
	return []string{slug + "/" + name}
}
