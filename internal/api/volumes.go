package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
	"lelantos.dev/lelantos/internal/volume"
)

// Volumes is what the volume routes need from the control plane;
// *controlplane.Service implements it. Every method but OpenVolume takes the
// caller's team; OpenVolume takes the volume's content token instead.
type Volumes interface {
	CreateVolume(ctx context.Context, teamID, name string, sizeMB int) (*controlplane.VolumeInfo, error)
	GetVolume(ctx context.Context, teamID, id string) (*controlplane.VolumeInfo, error)
	ListVolumes(ctx context.Context, teamID string) ([]controlplane.VolumeInfo, error)
	DeleteVolume(ctx context.Context, teamID, id string) error
	OpenVolume(ctx context.Context, id, token string) (*volume.Tree, error)
}

// volumeID is the {volumeID} path parameter.
func volumeID(r *http.Request) string { return chi.URLParam(r, "volumeID") }

// volumeJSON is a volume in GET /volumes.
type volumeJSON struct {
	VolumeID string `json:"volumeID"`
	Name     string `json:"name"`
}

// volumeAndTokenJSON is the VolumeAndToken shape: a volume with a content token.
// There is no domain: the content API is served with this API, at the URL the
// clients read from E2B_VOLUME_API_URL.
type volumeAndTokenJSON struct {
	VolumeID string `json:"volumeID"`
	Name     string `json:"name"`
	Token    string `json:"token"`
	// SizeMB is Lelantos's own: the volume's size.
	SizeMB int `json:"sizeMB"`
}

func toVolumeAndToken(v *controlplane.VolumeInfo) volumeAndTokenJSON {
	return volumeAndTokenJSON{VolumeID: v.ID, Name: v.Name, Token: v.Token, SizeMB: v.SizeMB}
}

// newVolumeBody is the body of POST /volumes.
type newVolumeBody struct {
	Name *string `json:"name"`
	// SizeMB is Lelantos's own: the volume's size (the server's default when
	// absent).
	SizeMB *int `json:"sizeMB"`
}

// volumesOff answers a volume route when the server keeps no volumes.
func (h *handler) volumesOff(w http.ResponseWriter) bool {
	if h.volumes == nil {
		writeError(w, http.StatusForbidden, "use of volumes is not enabled")
		return true
	}
	return false
}

// createVolume answers POST /volumes: 201 with the volume and a token.
func (h *handler) createVolume(w http.ResponseWriter, r *http.Request) {
	if h.volumesOff(w) {
		return
	}
	var body newVolumeBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	if body.Name == nil {
		writeError(w, http.StatusBadRequest, "name: required")
		return
	}
	size := 0
	if body.SizeMB != nil {
		if *body.SizeMB <= 0 {
			writeError(w, http.StatusBadRequest, "sizeMB: must be positive")
			return
		}
		size = *body.SizeMB
	}
	v, err := h.volumes.CreateVolume(r.Context(), teamOf(r), *body.Name, size)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toVolumeAndToken(v))
}

// listVolumes answers GET /volumes.
func (h *handler) listVolumes(w http.ResponseWriter, r *http.Request) {
	if h.volumesOff(w) {
		return
	}
	vs, err := h.volumes.ListVolumes(r.Context(), teamOf(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]volumeJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, volumeJSON{VolumeID: v.ID, Name: v.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

// getVolume answers GET /volumes/{volumeID}: the volume with a fresh token.
func (h *handler) getVolume(w http.ResponseWriter, r *http.Request) {
	if h.volumesOff(w) {
		return
	}
	v, err := h.volumes.GetVolume(r.Context(), teamOf(r), volumeID(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toVolumeAndToken(v))
}

// deleteVolume answers DELETE /volumes/{volumeID}: 204, or 409 while a sandbox
// that has not ended mounts it.
func (h *handler) deleteVolume(w http.ResponseWriter, r *http.Request) {
	if h.volumesOff(w) {
		return
	}
	if err := h.volumes.DeleteVolume(r.Context(), teamOf(r), volumeID(r)); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// toVolumeMounts is a sandbox's volumeMounts; never nil, so that it encodes as [].
func toVolumeMounts(ms []store.VolumeMount) []volumeMount {
	out := make([]volumeMount, 0, len(ms))
	for _, m := range ms {
		out = append(out, volumeMount{Name: m.Name, Path: m.Path})
	}
	return out
}

// createMounts turns the volumeMounts of a create body into the request's.
func createMounts(ms []volumeMount) []controlplane.VolumeMount {
	if len(ms) == 0 {
		return nil
	}
	out := make([]controlplane.VolumeMount, 0, len(ms))
	for _, m := range ms {
		out = append(out, controlplane.VolumeMount{Name: m.Name, Path: m.Path})
	}
	return out
}
