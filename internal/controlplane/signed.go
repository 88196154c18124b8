package controlplane

import (
	"context"
	"fmt"

	"lelantos.dev/lelantos/internal/filesig"
	"lelantos.dev/lelantos/internal/proxy"
	"lelantos.dev/lelantos/internal/store"
)

// ResolveSignedFile finds the running sandbox whose daemon access token signed
// f, for a signed file URL that names no sandbox (the clients build such URLs
// from E2B_SANDBOX_URL, which every sandbox shares). The signature is the
// credential: only the holder of a sandbox's token can make one that matches,
// and the daemon checks it again. No match wraps proxy.ErrSandboxNotFound.
func (s *Service) ResolveSignedFile(ctx context.Context, f proxy.SignedFile) (string, error) {
	cursor := ""
	for {
		page, next, err := s.store.ListSandboxes(ctx, store.SandboxFilter{States: []string{StateRunning}, Limit: 100, Cursor: cursor})
		if err != nil {
			return "", fmt.Errorf("resolve signed file URL: %w", err)
		}
		for _, sb := range page {
			if sb.EnvdAccessToken != "" && filesig.Matches(f.Signature, f.Path, f.Operation, f.Username, sb.EnvdAccessToken, f.Expiration) {
				return sb.ID, nil
			}
		}
		if next == "" {
			return "", fmt.Errorf("resolve signed file URL: no sandbox signed it: %w", proxy.ErrSandboxNotFound)
		}
		cursor = next
	}
}
