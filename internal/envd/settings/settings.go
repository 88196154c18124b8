// Package settings holds what the control plane tells a sandbox's daemon through
// POST /init: the access token, the sandbox's environment variables and the default
// user and working directory. One Settings value is shared by every service.
package settings

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// ErrTokenMismatch is returned by Apply when a token is already set and the
// request proves no knowledge of it.
var ErrTokenMismatch = errors.New("an access token is already set; present it to re-initialize")

// Init is the body of POST /init. Unknown fields are ignored by the decoder.
type Init struct {
	// EnvVars are merged into the sandbox's environment (later values win).
	EnvVars map[string]string `json:"envVars"`
	// AccessToken, when non-empty, becomes the token every protected route requires.
	AccessToken *string `json:"accessToken"`
	// DefaultUser is the user calls run as when they name none.
	DefaultUser string `json:"defaultUser"`
	// DefaultWorkdir is the working directory used when a call names none.
	DefaultWorkdir string `json:"defaultWorkdir"`
	// Timestamp orders /init calls: one older than the last applied is ignored.
	Timestamp string `json:"timestamp"`
}

// Settings is the daemon's mutable configuration. The zero value is not usable;
// call New.
type Settings struct {
	mu             sync.RWMutex
	token          []byte
	env            map[string]string
	defaultUser    string
	defaultWorkdir string
	lastInit       time.Time
}

// New returns Settings holding the given initial environment (copied).
func New(env map[string]string) *Settings {
	s := &Settings{env: map[string]string{}}
	maps.Copy(s.env, env)
	return s
}

// Apply installs an /init request. presented is the X-Access-Token the request
// carried. Once a token is set, a request must either carry it in presented or
// repeat it as its AccessToken; otherwise ErrTokenMismatch is returned and
// nothing changes. A request whose timestamp is older than the last applied one
// is accepted but ignored (applied reports false).
func (s *Settings) Apply(in Init, presented string) (applied bool, err error) {
	var ts time.Time
	if in.Timestamp != "" {
		ts, err = time.Parse(time.RFC3339Nano, in.Timestamp)
		if err != nil {
			return false, fmt.Errorf("parse timestamp %q: %w", in.Timestamp, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.token) > 0 {
		proved := presented != "" && subtle.ConstantTimeCompare([]byte(presented), s.token) == 1
		if !proved && in.AccessToken != nil {
			proved = subtle.ConstantTimeCompare([]byte(*in.AccessToken), s.token) == 1
		}
		if !proved {
			return false, ErrTokenMismatch
		}
	}
	if !ts.IsZero() {
		if ts.Before(s.lastInit) {
			return false, nil
		}
		s.lastInit = ts
	}
	if in.AccessToken != nil && *in.AccessToken != "" {
		s.token = []byte(*in.AccessToken)
	}
	maps.Copy(s.env, in.EnvVars)
	if in.DefaultUser != "" {
		s.defaultUser = in.DefaultUser
	}
	if in.DefaultWorkdir != "" {
		s.defaultWorkdir = in.DefaultWorkdir
	}
	return true, nil
}

// HasToken reports whether an access token is set.
func (s *Settings) HasToken() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.token) > 0
}

// TokenMatches compares candidate with the token in constant time. It is false
// when no token is set.
func (s *Settings) TokenMatches(candidate string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.token) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(candidate), s.token) == 1
}

// Token returns the access token and whether one is set.
func (s *Settings) Token() (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return string(s.token), len(s.token) > 0
}

// Env returns a copy of the sandbox's environment variables.
func (s *Settings) Env() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.env)
}

// DefaultUser returns the user set by /init, or "" when none was set.
func (s *Settings) DefaultUser() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.defaultUser
}

// DefaultWorkdir returns the working directory set by /init, or "".
func (s *Settings) DefaultWorkdir() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.defaultWorkdir
}
