package controlplane

import "context"

// PauseRequest are the options of PauseWith.
type PauseRequest struct {
	// FilesOnly keeps only the sandbox's files: its memory and processes are
	// dropped, and the next resume boots it fresh with its files. Traffic never
	// resumes such a sandbox.
	FilesOnly bool
}

// pauseWith stops sandbox id of team teamID keeping its memory and files, or
// only its files with req.FilesOnly. A paused sandbox, or one in a transition,
// is ErrConflict; a runtime that cannot pause so is ErrConflict with the
// node's reason, and the sandbox keeps running.
func (s *Service) pauseWith(ctx context.Context, teamID, id string, req PauseRequest) error {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := s.getOwned(ctx, teamID, id)
	if err != nil {
		return err
	}
	switch sb.State {
	case StateRunning:
	case StatePaused:
		return newError(ErrConflict, "Error pausing sandbox - sandbox '%s' is already paused", id)
	default:
		return newError(ErrConflict, "Sandbox '%s' cannot be paused while in '%s' state", id, clientVisible(sb.State))
	}
	return s.pauseLocked(ctx, sb, "paused on request", req.FilesOnly)
}

// recordPauseKind stores whether sandbox id's pause kept its memory (only
// then may traffic resume it) and the name of its image the control plane
// kept ("" for none). A failure is logged; the sandbox then keeps
// the kind of its previous pause.
func (s *Service) recordPauseKind(ctx context.Context, id string, filesOnly bool, kept string) {
	lc, err := s.store.SandboxLifecycleOf(ctx, id)
	if err == nil {
		lc.PausedMemory, lc.KeptImage = !filesOnly, kept
		err = s.store.PutSandboxLifecycle(context.WithoutCancel(ctx), id, lc)
	}
	if err != nil {
		s.log.Warn("record the kind of a pause", "sandbox", id, "files only", filesOnly, "err", err)
	}
}
