// Package filesig computes the signatures of the in-sandbox daemon's signed file
// URLs, a wire format fixed by the e2b clients:
//
//	"v1_" + unpadded base64 of sha256("<path>:<read|write>:<username>:<token>[:<expiration unix s>]")
//
// The daemon checks them; the sandbox proxy uses them to tell which sandbox a
// signed URL without any other routing information belongs to.
package filesig

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"
)

// The operations a signed URL may grant.
const (
	OpRead  = "read"
	OpWrite = "write"
)

// Sign returns the signature that grants op on path for username with token.
// A nil expiration signs a URL that never expires.
func Sign(path, op, username, token string, expiration *int64) string {
	raw := strings.Join([]string{path, op, username, token}, ":")
	if expiration != nil {
		raw += ":" + strconv.FormatInt(*expiration, 10)
	}
	sum := sha256.Sum256([]byte(raw))
	return "v1_" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Matches reports, in time independent of where they differ, whether signature
// is the one Sign gives for these arguments.
func Matches(signature, path, op, username, token string, expiration *int64) bool {
	want := Sign(path, op, username, token, expiration)
	return subtle.ConstantTimeCompare([]byte(signature), []byte(want)) == 1
}
