// Command pause is the sandbox ("pause") container of the Kubernetes test's
// pods: it holds the pod's namespaces, reaps orphans and exits on SIGTERM or
// SIGINT. No registry is reachable where the tests run, so the test builds
// its own rather than pulling Kubernetes'.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
