package errmap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/envd/identity"
)

func TestCodesAndStatuses(t *testing.T) {
	cases := []struct {
		err    error
		code   connect.Code
		status int
	}{
		{&fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, connect.CodeNotFound, http.StatusNotFound},
		{fmt.Errorf("wrapped: %w", fs.ErrPermission), connect.CodePermissionDenied, http.StatusForbidden},
		{syscall.EACCES, connect.CodePermissionDenied, http.StatusForbidden},
		{fs.ErrExist, connect.CodeAlreadyExists, http.StatusBadRequest},
		{syscall.ENOTDIR, connect.CodeInvalidArgument, http.StatusBadRequest},
		{identity.ErrBadPath, connect.CodeInvalidArgument, http.StatusBadRequest},
		{identity.ErrUnknownUser, connect.CodeUnauthenticated, http.StatusUnauthorized},
		{syscall.ENOSPC, connect.CodeResourceExhausted, http.StatusInsufficientStorage},
		{&fs.PathError{Op: "open", Path: "/dev/tty", Err: syscall.ENXIO}, connect.CodeFailedPrecondition, http.StatusBadRequest},
		{syscall.EXDEV, connect.CodeFailedPrecondition, http.StatusBadRequest},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded, http.StatusInternalServerError},
		{connect.NewError(connect.CodeAborted, errors.New("x")), connect.CodeAborted, http.StatusInternalServerError},
		{errors.New("other"), connect.CodeInternal, http.StatusInternalServerError},
	}
	for _, tc := range cases {
		if got := Code(tc.err); got != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, got, tc.code)
		}
		if got := Status(tc.err); got != tc.status {
			t.Errorf("%v: status %d, want %d", tc.err, got, tc.status)
		}
		if ce := new(connect.Error); !errors.As(Connect("op", tc.err), &ce) || ce.Code() != tc.code {
			t.Errorf("%v: Connect gave %v", tc.err, Connect("op", tc.err))
		}
	}
	if Connect("op", nil) != nil {
		t.Fatal("nil error wrapped")
	}
}
