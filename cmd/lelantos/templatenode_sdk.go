package main

import (
	"context"
	"io"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/template"
)

// specOf converts the control plane's step form.
func specOf(s *controlplane.TemplateSpec) *template.Spec {
	out := &template.Spec{FromImage: s.FromImage, FromTemplate: s.FromTemplate, Force: s.Force}
	if r := s.Registry; r != nil {
		out.Registry = &template.RegistryAuth{Username: r.Username, Password: r.Password}
	}
	for _, st := range s.Steps {
		out.Steps = append(out.Steps, template.SpecStep{Type: st.Type, Args: st.Args, FilesHash: st.FilesHash, Force: st.Force})
	}
	return out
}

// ReserveBuild implements controlplane.TemplateBuilder.
func (n *templateNode) ReserveBuild(_ context.Context, req controlplane.TemplateBuildRequest) error {
	err := n.builder.Reserve(template.ReserveRequest{Name: req.Name, BuildID: req.BuildID, CPUCount: req.CPUCount,
		MemoryMB: req.MemoryMB, DiskSizeMB: req.DiskSizeMB, Tags: req.Tags})
	if err != nil {
		return kindError(err, "")
	}
	return nil
}

// HasFile implements controlplane.TemplateBuilder.
func (n *templateNode) HasFile(_ context.Context, teamID, hash string) (bool, error) {
	ok, err := n.builder.HasFile(teamID, hash)
	if err != nil {
		return false, kindError(err, "")
	}
	return ok, nil
}

// PutFile implements controlplane.TemplateBuilder.
func (n *templateNode) PutFile(ctx context.Context, teamID, hash string, r io.Reader) error {
	if err := n.builder.PutFile(ctx, teamID, hash, r); err != nil {
		return kindError(err, "")
	}
	n.kick() // the cache grew: prune it to its cap now, not at the next build
	return nil
}

// Tags implements controlplane.TemplateBuilder.
func (n *templateNode) Tags(ctx context.Context, templateID string) ([]controlplane.TemplateTag, error) {
	tags, err := n.builder.Tags(ctx, templateID)
	if err != nil {
		return nil, kindError(err, "")
	}
	out := make([]controlplane.TemplateTag, 0, len(tags))
	for _, t := range tags {
		out = append(out, controlplane.TemplateTag{Tag: t.Tag, BuildID: t.BuildID, CreatedAt: t.CreatedAt})
	}
	return out, nil
}

// AssignTags implements controlplane.TemplateBuilder.
func (n *templateNode) AssignTags(ctx context.Context, templateID, buildID string, tags []string) error {
	if err := n.builder.AssignTags(ctx, templateID, buildID, tags); err != nil {
		return kindError(err, "")
	}
	return nil
}

// RemoveTags implements controlplane.TemplateBuilder; the versions no tag
// keeps any more go at the next collection.
func (n *templateNode) RemoveTags(ctx context.Context, templateID string, tags []string) error {
	if err := n.builder.RemoveTags(ctx, templateID, tags); err != nil {
		return kindError(err, "")
	}
	return nil
}
