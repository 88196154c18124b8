package api

import (
	"net/http"

	"lelantos.dev/lelantos/internal/controlplane"
)

// timeoutBody is the body of POST /sandboxes/{id}/timeout.
type timeoutBody struct {
	Timeout *int64 `json:"timeout"`
}

// refreshBody is the body of POST /sandboxes/{id}/refreshes.
type refreshBody struct {
	Duration *int64 `json:"duration"`
}

// pauseBody is the body of POST /sandboxes/{id}/pause. memory=false is a
// pause that keeps only the files.
type pauseBody struct {
	Memory *bool `json:"memory"`
}

// resumeBody is the body of resume and connect.
type resumeBody struct {
	Timeout   *int64 `json:"timeout"`
	AutoPause *bool  `json:"autoPause"`
	Memory    *bool  `json:"memory"`
}

// timeout answers POST /sandboxes/{id}/timeout: end = now + timeout.
func (h *handler) timeout(w http.ResponseWriter, r *http.Request) {
	var body timeoutBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	if body.Timeout == nil {
		writeBad(w, badf("timeout: required"))
		return
	}
	d, err := h.seconds("timeout", body.Timeout, h.svc.MaxTimeout())
	if err != nil {
		writeBad(w, err)
		return
	}
	if err := h.svc.SetTimeout(r.Context(), teamOf(r), sandboxID(r), d); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// refresh answers POST /sandboxes/{id}/refreshes: extends, never shortens.
func (h *handler) refresh(w http.ResponseWriter, r *http.Request) {
	var body refreshBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	d, err := h.seconds("duration", body.Duration, controlplane.MaxRefresh)
	if err != nil {
		writeBad(w, err)
		return
	}
	if err := h.svc.Refresh(r.Context(), teamOf(r), sandboxID(r), d); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// pause answers POST /sandboxes/{id}/pause: 204, 409 when already paused.
func (h *handler) pause(w http.ResponseWriter, r *http.Request) {
	var body pauseBody
	if err := h.decodeBody(w, r, &body); err != nil {
		writeBad(w, err)
		return
	}
	req := controlplane.PauseRequest{FilesOnly: body.Memory != nil && !*body.Memory}
	if err := h.svc.PauseWith(r.Context(), teamOf(r), sandboxID(r), req); err != nil {
		h.fail(w, r, err)
		return
	}
	noContent(w)
}

// resumeOptions reads and checks a resume or connect body.
func (h *handler) resumeOptions(w http.ResponseWriter, r *http.Request) (controlplane.ResumeRequest, error) {
	var body resumeBody
	if err := h.decodeBody(w, r, &body); err != nil {
		return controlplane.ResumeRequest{}, err
	}
	d, err := h.seconds("timeout", body.Timeout, h.svc.MaxTimeout())
	if err != nil {
		return controlplane.ResumeRequest{}, err
	}
	// memory=false boots a paused sandbox fresh with its files.
	return controlplane.ResumeRequest{Timeout: d, AutoPause: body.AutoPause, ColdBoot: body.Memory != nil && !*body.Memory}, nil
}

// resume answers POST /sandboxes/{id}/resume: 201, 409 when running.
func (h *handler) resume(w http.ResponseWriter, r *http.Request) {
	opts, err := h.resumeOptions(w, r)
	if err != nil {
		writeBad(w, err)
		return
	}
	sb, err := h.svc.Resume(r.Context(), teamOf(r), sandboxID(r), opts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toSandbox(sb, h.svc.Domain()))
}

// connect answers POST /sandboxes/{id}/connect and the v2 route: 200 when
// it was running (its end time only extended), 201 when it was resumed.
func (h *handler) connect(w http.ResponseWriter, r *http.Request) {
	opts, err := h.resumeOptions(w, r)
	if err != nil {
		writeBad(w, err)
		return
	}
	sb, resumed, err := h.svc.ConnectWith(r.Context(), teamOf(r), sandboxID(r),
		controlplane.ConnectRequest{Timeout: opts.Timeout, ColdBoot: opts.ColdBoot})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if resumed {
		status = http.StatusCreated
	}
	writeJSON(w, status, toSandbox(sb, h.svc.Domain()))
}
