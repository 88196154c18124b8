// Package cli tests the `lelantos sandbox` commands as a user runs them: it
// builds the lelantos binary, starts a real server (`lelantos serve` with its
// own data directory, ports, subnet and network prefix, real gVisor
// sandboxes of the base template), then runs the CLI with the server's
// client.env and checks stdout, stderr and exit codes, including the
// interactive shell driven through a real pseudo-terminal.
//
// The tests need root, the project's cached runsc and base template; they run
// through enginetest.Main, so the server's veths and firewall rules stay in a
// private network namespace.
package cli
