package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"lelantos.dev/lelantos/internal/store"
)

// Tags: a template's name:tag names one of its builds; the name alone means
// name:default, its current build.

// SplitTag cuts "name:tag" in two; the tag is "" when there is none.
func SplitTag(ref string) (name, tag string) {
	if i := strings.LastIndexByte(ref, ':'); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// findTemplateRef finds the template ref means for team teamID, as
// FindTemplate does, where ref may name a tag (name:tag): the template is
// then returned with the tagged build as its BuildID. An unknown tag is
// store.ErrNotFound, as an unknown name.
func (s *Service) findTemplateRef(ctx context.Context, teamID, ref string) (*store.Template, error) {
	name, tag := SplitTag(ref)
	t, err := s.store.FindTemplate(ctx, teamID, name)
	if err != nil || tag == "" || tag == DefaultTag {
		return t, err
	}
	b, err := s.taggedBuild(ctx, t, tag)
	if err != nil {
		return nil, err
	}
	t.BuildID, t.RootfsPath = b, ""
	return t, nil
}

// taggedBuild is the build tag of t names; store.ErrNotFound when none.
func (s *Service) taggedBuild(ctx context.Context, t *store.Template, tag string) (string, error) {
	if tag == DefaultTag {
		return t.BuildID, nil
	}
	if s.cfg.Builder == nil {
		return "", fmt.Errorf("tag %q of template %q: %w", tag, t.Name, store.ErrNotFound)
	}
	tags, err := s.cfg.Builder.Tags(ctx, t.ID)
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("tag %q of template %q: %w", tag, t.Name, store.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	for _, x := range tags {
		if x.Tag == tag {
			return x.BuildID, nil
		}
	}
	return "", fmt.Errorf("tag %q of template %q: %w", tag, t.Name, store.ErrNotFound)
}

// tagNotFound is the error of a missing tag, in E2B's words.
func tagNotFound(name, tag string) error {
	return newError(ErrNotFound, "tag '%s' does not exist for template '%s'", tag, name)
}

// TemplateByAlias returns the template alias (a name, or name:tag) means
// to team teamID: its own or a public one. A missing template or tag is
// ErrNotFound.
func (s *Service) TemplateByAlias(ctx context.Context, teamID, alias string) (*store.Template, error) {
	name, tag := SplitTag(alias)
	t, err := s.visibleTemplate(ctx, teamID, name)
	if err != nil {
		return nil, err
	}
	if tag != "" && tag != DefaultTag {
		if _, err := s.taggedBuild(ctx, t, tag); errors.Is(err, store.ErrNotFound) {
			return nil, tagNotFound(name, tag)
		} else if err != nil {
			return nil, internal("read tags of "+name, err)
		}
	}
	return t, nil
}

// ownTemplate is the template name (ID, name or alias) of team teamID; a
// public template of another team is not found here.
func (s *Service) ownTemplate(ctx context.Context, teamID, name string) (*store.Template, error) {
	t, err := s.visibleTemplate(ctx, teamID, name)
	if err != nil {
		return nil, err
	}
	if t.TeamID != teamID {
		return nil, templateNotFound(name)
	}
	if s.cfg.Builder == nil {
		return nil, errNoBuilder()
	}
	return t, nil
}

// TemplateTags lists the tags of team teamID's template, "default" first.
func (s *Service) TemplateTags(ctx context.Context, teamID, templateID string) ([]TemplateTag, error) {
	t, err := s.ownTemplate(ctx, teamID, templateID)
	if err != nil {
		return nil, err
	}
	return s.cfg.Builder.Tags(ctx, t.ID)
}

// AssignTemplateTags points tags of team teamID's template at the build
// target (name:tag, or name for its current build) names, returning that
// build and the tags.
func (s *Service) AssignTemplateTags(ctx context.Context, teamID, target string, tags []string) (string, []string, error) {
	if len(tags) == 0 {
		return "", nil, invalidf("tags: At least one tag is required")
	}
	tags, err := NormalizeTags("tags", tags)
	if err != nil {
		return "", nil, err
	}
	name, tag := SplitTag(target)
	t, err := s.ownTemplate(ctx, teamID, name)
	if err != nil {
		return "", nil, err
	}
	if tag == "" {
		tag = DefaultTag
	}
	build, err := s.taggedBuild(ctx, t, tag)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, tagNotFound(name, tag)
	}
	if err != nil {
		return "", nil, internal("read tags of "+name, err)
	}
	if err := s.cfg.Builder.AssignTags(ctx, t.ID, build, tags); err != nil {
		return "", nil, err
	}
	return build, tags, nil
}

// RemoveTemplateTags removes tags of team teamID's template name (without a
// tag); "default" cannot be removed.
func (s *Service) RemoveTemplateTags(ctx context.Context, teamID, name string, tags []string) error {
	if _, tag := SplitTag(name); tag != "" {
		return invalidf("name: %q must be a template name without a tag", name)
	}
	if len(tags) == 0 {
		return invalidf("tags: At least one tag is required")
	}
	for _, tag := range tags {
		if tag == DefaultTag {
			return invalidf("tags: the %q tag cannot be removed", DefaultTag)
		}
		if !tagRE.MatchString(tag) {
			return invalidf("tags: tag %q must be 1-128 of a-z, 0-9, '.', '-' and '_'", tag)
		}
	}
	t, err := s.ownTemplate(ctx, teamID, name)
	if err != nil {
		return err
	}
	return s.cfg.Builder.RemoveTags(ctx, t.ID, tags)
}
