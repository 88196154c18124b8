// Package insandbox holds the daemon's tests that need it where it runs for
// real: as the init of a sandbox of each runtime class, whose kernel (gVisor's
// sentry, or the host's for runc) decides what a user may touch. It has no code
// of its own; its tests build envd from this tree (see enginetest).
package insandbox
