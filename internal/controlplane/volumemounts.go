package controlplane

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
	"lelantos.dev/lelantos/internal/store"
)

// VolumeMount asks for volume Name of the sandbox's team at Path inside it.
type VolumeMount struct {
	Name, Path string
}

// MaxVolumeMounts bounds the volumes one sandbox mounts.
const MaxVolumeMounts = 16

// reservedMountPaths are where the sandbox's own file systems and the daemon live:
// a volume over them would hide them (and, on the host's kernel, /proc and /sys
// shadowed by a writable tree are a way out).
var reservedMountPaths = []string{"/proc", "/sys", "/dev", "/lelantos"}

// mountProblems collects what is wrong with the mounts of one create, in E2B's
// form after the field's name: "volumeMounts: invalid mounts:" then a line per
// problem.
type mountProblems []string

func (p *mountProblems) add(i int, format string, args ...any) {
	*p = append(*p, fmt.Sprintf("\t- volume mount #%d: ", i)+fmt.Sprintf(format, args...))
}

func (p mountProblems) err() error {
	if len(p) == 0 {
		return nil
	}
	return invalidf("volumeMounts: invalid mounts:\n%s", strings.Join(p, "\n"))
}

// checkMountPath returns what is wrong with a mount's path, or "".
func checkMountPath(p string) string {
	switch {
	case p == "":
		return "path is required"
	case !strings.HasPrefix(p, "/"):
		return "path must be absolute"
	case path.Clean(p) != p:
		return fmt.Sprintf("path '%s' must be clean (no '.', '..' or repeated '/')", p)
	case p == "/":
		return "path must not be the root"
	case strings.ContainsRune(p, 0):
		return "path must not contain a NUL byte"
	}
	for _, r := range reservedMountPaths {
		if p == r || strings.HasPrefix(p, r+"/") {
			return fmt.Sprintf("path '%s' is reserved (%s holds the sandbox's own files)", p, r)
		}
	}
	return ""
}

// volumeMounts checks the mounts of a create for team teamID and returns them as
// the store keeps them. Every problem is reported at once; the store checks the
// names again when it stores the sandbox, so that a volume deleted meanwhile is
// refused the same way.
func (s *Service) volumeMounts(ctx context.Context, teamID string, req []VolumeMount) ([]store.VolumeMount, error) {
	if len(req) == 0 {
		return nil, nil
	}
	if len(req) > MaxVolumeMounts {
		return nil, invalidf("volumeMounts: at most %d volumes per sandbox, got %d", MaxVolumeMounts, len(req))
	}
	names := map[string]bool{}
	if s.cfg.Volumes != nil {
		vs, err := s.store.ListVolumes(ctx, teamID)
		if err != nil {
			return nil, internal("read volumes", err)
		}
		for _, v := range vs {
			names[v.Name] = true
		}
	}
	var problems mountProblems
	out := make([]store.VolumeMount, 0, len(req))
	for i, m := range req {
		if !names[m.Name] {
			problems.add(i, "volume '%s' not found", m.Name)
		}
		if msg := checkMountPath(m.Path); msg != "" {
			problems.add(i, "%s", msg)
		} else {
			for j, prev := range req[:i] {
				if prev.Path == m.Path {
					problems.add(i, "path '%s' is already used", m.Path)
					break
				}
				if strings.HasPrefix(m.Path, prev.Path+"/") || strings.HasPrefix(prev.Path, m.Path+"/") {
					problems.add(i, "path '%s' and the path '%s' of mount #%d are inside one another", m.Path, prev.Path, j)
					break
				}
			}
		}
		out = append(out, store.VolumeMount{Name: m.Name, Path: m.Path})
	}
	return out, problems.err()
}

// mountError is the client's error for a store refusal of a mount (a volume
// deleted between the check and the insert), else nil.
func mountError(err error) error {
	var me *store.MountError
	if !errors.As(err, &me) {
		return nil
	}
	var p mountProblems
	p.add(me.Index, "volume '%s' not found", me.Name)
	return p.err()
}

// specVolumeMounts are a sandbox's mounts as the node gets them.
func specVolumeMounts(ms []store.VolumeMount) []*agentv1.VolumeMount {
	if len(ms) == 0 {
		return nil
	}
	out := make([]*agentv1.VolumeMount, 0, len(ms))
	for _, m := range ms {
		out = append(out, &agentv1.VolumeMount{VolumeId: m.VolumeID, Name: m.Name, Path: m.Path})
	}
	return out
}
