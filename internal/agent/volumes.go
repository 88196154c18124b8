package agent

import (
	"lelantos.dev/lelantos/internal/engine"
	agentv1 "lelantos.dev/lelantos/internal/gen/agent/v1"
)

// volumeMountsFromProto converts a spec's volume mounts for the engine.
func volumeMountsFromProto(ms []*agentv1.VolumeMount) []engine.VolumeMount {
	if len(ms) == 0 {
		return nil
	}
	out := make([]engine.VolumeMount, 0, len(ms))
	for _, m := range ms {
		out = append(out, engine.VolumeMount{VolumeID: m.GetVolumeId(), Name: m.GetName(), Path: m.GetPath()})
	}
	return out
}

// volumeMountsToProto is the inverse of volumeMountsFromProto.
func volumeMountsToProto(ms []engine.VolumeMount) []*agentv1.VolumeMount {
	if len(ms) == 0 {
		return nil
	}
	out := make([]*agentv1.VolumeMount, 0, len(ms))
	for _, m := range ms {
		out = append(out, &agentv1.VolumeMount{VolumeId: m.VolumeID, Name: m.Name, Path: m.Path})
	}
	return out
}
