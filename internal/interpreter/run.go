package interpreter

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Synthetic errors of an execution, as the clients name them.
const (
	errContextRestarting = "ContextRestarting"
	errExecutionAborted  = "ExecutionAborted"
	errKernelDied        = "KernelDied"
	errKernelError       = "KernelError"
)

// cleanupTimeout bounds the silent run that undoes a run's env_vars.
const cleanupTimeout = 30 * time.Second

// execution is one POST /execute once its context is chosen.
type execution struct {
	code string
	// env is the run's own env_vars; sandbox the sandbox's, from envd (nil
	// when envd was not asked).
	env, sandbox map[string]string
}

// run executes x in c, writing its lines to out and end_of_execution last. ctx
// ends when the client is gone: the kernel is then interrupted.
func (m *Manager) run(ctx context.Context, c *Context, x execution, out *stream) {
	defer out.line(simpleLine(LineEndOfExecution))
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.turn }()
	if err := m.ensureKernel(ctx, c); err != nil {
		out.line(ErrorLine(errKernelError, err.Error(), nil))
		return
	}
	c.mu.Lock()
	k, gen, envsSet := c.kernel, c.generation, c.envsSet
	c.mu.Unlock()
	flags := executeFlags{storeHistory: true}
	if !envsSet && x.sandbox != nil {
		switch {
		case len(x.sandbox) == 0:
		case k.envHook.Load() && strings.TrimSpace(x.code) != "":
			// The kernel sets them just before the cell (a blank cell runs nothing).
			flags.env = x.sandbox
		default:
			if err := k.Run(ctx, c.lang.envCode(x.sandbox)); err != nil {
				m.opts.Logger.Warn("set the sandbox's env vars in a context", "context", c.ID, "err", err)
			}
		}
		c.mu.Lock()
		c.envsSet = true
		c.mu.Unlock()
	}
	sentError := false
	reply, err := k.execute(ctx, withSetup(c.lang.envCode(x.env), x.code), flags, func(msg *Message) {
		sh := ShapeIOPub(msg)
		if sh.Line == nil || (sh.Error && sentError) {
			return
		}
		sentError = sentError || sh.Error
		out.line(sh.Line)
	})
	if len(x.env) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		if cerr := k.Run(cctx, c.lang.restoreCode(x.env, x.sandbox)); cerr != nil {
			m.opts.Logger.Warn("undo a run's env vars", "context", c.ID, "err", cerr)
		}
		cancel()
	}
	c.mu.Lock()
	restarted := c.generation != gen
	c.mu.Unlock()
	switch {
	case restarted:
		if !sentError {
			out.line(ErrorLine(errContextRestarting, "Context was restarted", nil))
		}
	case errors.Is(err, ErrKernelDied):
		if !sentError {
			out.line(ErrorLine(errKernelDied, "The kernel died; the next execution starts a new one (its state is lost)", nil))
		}
	case errors.Is(err, ErrInterruptFailed):
		m.opts.Logger.Warn("a kernel ignored an interrupt; replacing it", "context", c.ID)
		k.Close()
	case err != nil:
		if ctx.Err() == nil && !sentError {
			out.line(ErrorLine(errKernelError, err.Error(), nil))
		}
	case reply != nil && reply.Status == "aborted":
		if !sentError {
			out.line(ErrorLine(errExecutionAborted, "Execution was aborted", nil))
		}
	case reply != nil && reply.Status == "error" && !sentError:
		out.line(ErrorLine(reply.EName, reply.EValue, reply.Traceback))
	}
}
