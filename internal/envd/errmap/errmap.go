// Package errmap turns the daemon's filesystem and process errors into the
// wire's error shapes: Connect codes for the RPC services and HTTP statuses for
// the plain routes.
package errmap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"syscall"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/identity"
)

// Code classifies err into a Connect code.
func Code(err error) connect.Code {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce.Code()
	case errors.Is(err, fs.ErrNotExist):
		return connect.CodeNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return connect.CodePermissionDenied
	case errors.Is(err, fs.ErrExist), errors.Is(err, syscall.ENOTEMPTY):
		return connect.CodeAlreadyExists
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EINVAL),
		errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP), errors.Is(err, identity.ErrBadPath):
		return connect.CodeInvalidArgument
	case errors.Is(err, identity.ErrUnknownUser), errors.Is(err, identity.ErrBadAuthorization):
		return connect.CodeUnauthenticated
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return connect.CodeResourceExhausted
	case errors.Is(err, syscall.EXDEV), errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.ENODEV):
		// Across filesystems; a device or FIFO with nothing behind it.
		return connect.CodeFailedPrecondition
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	}
	return connect.CodeInternal
}

// Connect wraps err with the operation and returns it as a *connect.Error with
// the code Code picks. A *connect.Error passes through unchanged.
func Connect(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	return connect.NewError(Code(err), fmt.Errorf("%s: %w", op, err))
}

// Status returns the HTTP status for err on the plain routes.
func Status(err error) int {
	switch Code(err) {
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeAlreadyExists, connect.CodeInvalidArgument, connect.CodeFailedPrecondition:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodeResourceExhausted:
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}
