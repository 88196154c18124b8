package main

import (
	"fmt"
	"slices"
	"strings"

	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

// runtimeClassesUsage is the help of serve's --runtime-classes.
const runtimeClassesUsage = "runtime classes built and offered to creates, comma-separated: " +
	"gvisor (always; sandboxes on gVisor's own kernel) and runc (containers on the host's kernel, " +
	"in a user namespace under seccomp: faster, but a kernel bug is a way out, and sudo does not work in them); " +
	"a create asking for another class gets a 400"

// parseRuntimeClasses reads a --runtime-classes list: known names, gvisor among them.
func parseRuntimeClasses(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		switch c {
		case "":
			continue
		case gvisor.Class, runc.Class:
		default:
			return nil, fmt.Errorf("unknown runtime class %q (want %s or %s)", c, gvisor.Class, runc.Class)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	if !slices.Contains(out, gvisor.Class) {
		return nil, fmt.Errorf("%q must include %s: it is the default class and templates build in it", s, gvisor.Class)
	}
	return out, nil
}
