package interpreter

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/google/uuid"
)

// newUUID returns a random UUID, the form Jupyter ids take.
func newUUID() string { return uuid.NewString() }

// newKey returns a random signing key for a kernel connection.
func newKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
