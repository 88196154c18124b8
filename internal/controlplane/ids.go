package controlplane

import (
	"crypto/rand"
	"encoding/hex"
)

// idAlphabet is what sandbox IDs are made of: host names carry them, and "-"
// separates the port from the ID there, so lower-case letters and digits only.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// SandboxIDLen is the length of a sandbox ID.
const SandboxIDLen = 20

// newSandboxID returns SandboxIDLen random characters of idAlphabet.
func newSandboxID() string {
	// 252 is the largest multiple of 36 below 256: rejecting bytes at or
	// above it keeps every character equally likely.
	const limit = 256 - 256%len(idAlphabet)
	out := make([]byte, 0, SandboxIDLen)
	buf := make([]byte, 32)
	for len(out) < SandboxIDLen {
		rand.Read(buf) // never fails (crypto/rand panics rather than return short)
		for _, b := range buf {
			if int(b) < limit && len(out) < SandboxIDLen {
				out = append(out, idAlphabet[int(b)%len(idAlphabet)])
			}
		}
	}
	return string(out)
}

// randomHex returns n random bytes as lower-case hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// validSandboxID reports whether id could be a sandbox ID (letters and digits,
// at most 63 characters); anything else cannot exist, so it is "not found".
func validSandboxID(id string) bool {
	if id == "" || len(id) > 63 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
