package controlplane

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/store"
)

// Kinds of failure a caller can branch on with errors.Is. The HTTP layer maps
// them to 400, 401, 404, 409, 429 and 503; any other error is an internal
// one.
var (
	// ErrInvalidArgument: the request is malformed or names something that
	// does not exist (an unknown template); the message names the field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnauthenticated: an API key is missing, unknown or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrNotFound: the sandbox (or key, build, template) is unknown, killed,
	// dead, or another team's: callers cannot tell those apart.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request does not fit the sandbox's state (pausing a
	// paused sandbox, resuming a running one, a runtime that cannot pause).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the node is out of capacity or unreachable; retry later.
	ErrUnavailable = errors.New("unavailable")
	// ErrQuota: the caller's team is at one of its quotas (concurrent
	// sandboxes, their vCPUs or memory, concurrent builds); the message names
	// the quota and its value.
	ErrQuota = errors.New("quota exceeded")
)

// Error is a failure with a message meant for API clients. Kind is one of the
// sentinel errors above (nil for an internal error); Cause, when set, is the
// underlying error.
type Error struct {
	Kind    error
	Message string
	Cause   error
}

// Error returns the client-facing message, followed by the cause if any.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// newError builds an *Error of the given kind with a formatted message.
func newError(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// invalidf is an ErrInvalidArgument error; by convention the message starts
// with the name of the offending field, e.g. "timeout: must not be negative".
func invalidf(format string, args ...any) error {
	return newError(ErrInvalidArgument, format, args...)
}

// notFound is the ErrNotFound error for a sandbox ID.
func notFound(id string) error {
	return newError(ErrNotFound, "sandbox %q not found", id)
}

// internal wraps an unexpected failure of op (a store error, say).
// Text the store cannot hold is the client's error: callers check the
// fields they know by name (checkText), and any other such text still
// reaches the client as ErrInvalidArgument, never as an internal error.
func internal(op string, err error) error {
	if errors.Is(err, store.ErrText) {
		return newError(ErrInvalidArgument, "%s: %v", op, err)
	}
	return &Error{Message: op, Cause: err}
}

// checkText refuses a client's text that the store cannot hold (not UTF-8,
// or holding a NUL byte), naming the field.
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalidf("%s: %q is not valid UTF-8", field, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalidf("%s: %q contains a NUL byte", field, s)
	}
	return nil
}

// quotaNouns describe each quota in messages.
var quotaNouns = map[string]string{
	store.QuotaSandboxes: "concurrent sandboxes",
	store.QuotaVCPU:      "vCPUs of running sandboxes",
	store.QuotaMemoryMB:  "MB of memory of running sandboxes",
	store.QuotaBuilds:    "concurrent template builds",
}

// storeError turns a store failure of op into the client's error: a quota
// refusal is ErrQuota with a message naming the quota and its value,
// anything else internal.
func storeError(op string, err error) error {
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		return internal(op, err)
	}
	msg := fmt.Sprintf("team %q is at its limit of %d %s (%s)", qe.TeamSlug, qe.Limit, quotaNouns[qe.Quota], qe.Quota)
	if qe.Quota == store.QuotaVCPU || qe.Quota == store.QuotaMemoryMB {
		msg += fmt.Sprintf(": %d in use, %d more asked", qe.Used, qe.Asked)
	}
	return &Error{Kind: ErrQuota, Message: msg}
}

// nodeError maps a failed agent RPC to an error kind: InvalidArgument is the
// client's fault, NotFound an unknown sandbox, FailedPrecondition,
// AlreadyExists and Aborted a state or runtime conflict; ResourceExhausted
// (the node is full), Unavailable (unreachable) and DeadlineExceeded (no
// answer within NodeTimeout) mean "try later"; anything else is internal.
// The message names the operation and sandbox, and carries the node's.
func nodeError(op, id string, err error) error {
	if e := (*Error)(nil); errors.As(err, &e) {
		return err // the Service's own, e.g. a node it cannot reach
	}
	var kind error
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument:
		kind = ErrInvalidArgument
	case connect.CodeNotFound:
		kind = ErrNotFound
	case connect.CodeFailedPrecondition, connect.CodeAlreadyExists, connect.CodeAborted:
		kind = ErrConflict
	case connect.CodeResourceExhausted, connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		kind = ErrUnavailable
	}
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	if connect.CodeOf(err) == connect.CodeDeadlineExceeded {
		msg = "no answer in time (" + msg + ")"
	}
	return &Error{Kind: kind, Message: fmt.Sprintf("%s %s: node: %s", op, id, msg)}
}
