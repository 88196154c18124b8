// Package api carries the control plane's HTTP contract, openapi.yaml, into
// the binary, which serves it at GET /openapi.yaml.
package api

import (
	"bytes"
	_ "embed"
)

//go:embed openapi.yaml
var spec []byte

// Spec returns a copy of the OpenAPI 3.0 document of the control plane API.
func Spec() []byte { return bytes.Clone(spec) }
