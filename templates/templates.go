// Package templates holds the definitions of the templates Lelantos builds
// itself (`lelantos serve` builds each when it is missing or its definition
// changed): one directory per template, a Dockerfile and the files it copies.
package templates

import "embed"

// FS holds the definitions, one directory per template.
//
//go:embed code-interpreter
var FS embed.FS
