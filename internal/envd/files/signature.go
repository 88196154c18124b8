package files

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"lelantos.dev/lelantos/internal/filesig"
)

// The operations a signed URL may grant.
const (
	OpRead  = filesig.OpRead
	OpWrite = filesig.OpWrite
)

// Authorization failures of the /files routes (all 401).
var (
	ErrTokenMismatch    = errors.New("access token present in header but does not match")
	ErrMissingSignature = errors.New("missing signature query parameter")
	ErrBadSignature     = errors.New("invalid signature")
	ErrExpiredSignature = errors.New("signature is already expired")
	ErrBadExpiration    = errors.New("invalid signature_expiration query parameter")
)

// Sign returns the signature that grants op on path for username with token
// (see package filesig for the format).
func Sign(path, op, username, token string, expiration *int64) string {
	return filesig.Sign(path, op, username, token, expiration)
}

// Tokens is what authorization needs from the sandbox's settings.
type Tokens interface {
	// Token returns the access token and whether one is set.
	Token() (string, bool)
	// TokenMatches compares a candidate with the token in constant time.
	TokenMatches(candidate string) bool
}

// authorize lets a /files request through when no token is set, when it carries
// the token in X-Access-Token, or when its query holds a valid, unexpired
// signature for op on its path and username.
func authorize(r *http.Request, tokens Tokens, op string, now time.Time) error {
	token, set := tokens.Token()
	if !set {
		return nil
	}
	if presented := r.Header.Get("X-Access-Token"); presented != "" {
		if !tokens.TokenMatches(presented) {
			return ErrTokenMismatch
		}
		return nil
	}
	q := r.URL.Query()
	sig := q.Get("signature")
	if sig == "" {
		return ErrMissingSignature
	}
	var exp *int64
	if raw := q.Get("signature_expiration"); raw != "" {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return ErrBadExpiration
		}
		exp = &v
	}
	if !filesig.Matches(sig, q.Get("path"), op, q.Get("username"), token, exp) {
		return ErrBadSignature
	}
	if exp != nil && *exp < now.Unix() {
		return ErrExpiredSignature
	}
	return nil
}
