package interpreter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// KernelSpec is a Jupyter kernelspec (kernel.json).
type KernelSpec struct {
	Argv          []string          `json:"argv"`
	DisplayName   string            `json:"display_name"`
	Language      string            `json:"language"`
	InterruptMode string            `json:"interrupt_mode"`
	Env           map[string]string `json:"env"`
}

// ErrNoKernel is a language whose kernel is not installed.
var ErrNoKernel = errors.New("no such kernel")

// DefaultKernelDirs are where kernelspecs are looked up, first match first: the
// standard Jupyter data directories.
var DefaultKernelDirs = []string{"/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels"}

var kernelNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// findKernelSpec reads the kernelspec name from the first of dirs that has it.
func findKernelSpec(dirs []string, name string) (*KernelSpec, error) {
	if !kernelNameRE.MatchString(name) {
		return nil, fmt.Errorf("kernel %q: %w", name, ErrNoKernel)
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, name, "kernel.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read kernelspec %s: %w", name, err)
		}
		var ks KernelSpec
		if err := json.Unmarshal(b, &ks); err != nil {
			return nil, fmt.Errorf("read kernelspec %s: %w", name, err)
		}
		if len(ks.Argv) == 0 {
			return nil, fmt.Errorf("read kernelspec %s: empty argv", name)
		}
		return &ks, nil
	}
	return nil, fmt.Errorf("kernel %q: %w", name, ErrNoKernel)
}

// ConnectionInfo is a kernel's connection file.
type ConnectionInfo struct {
	IP              string `json:"ip"`
	Transport       string `json:"transport"`
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	Key             string `json:"key"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name,omitempty"`
}

// endpoint is the ZeroMQ address of port.
func (c *ConnectionInfo) endpoint(port int) string {
	return fmt.Sprintf("%s://%s:%d", c.Transport, c.IP, port)
}

// ReadConnectionFile reads a kernel's connection file.
func ReadConnectionFile(path string) (*ConnectionInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read connection file: %w", err)
	}
	var c ConnectionInfo
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read connection file %s: %w", path, err)
	}
	if c.Transport == "" {
		c.Transport = "tcp"
	}
	if c.SignatureScheme != "" && c.SignatureScheme != "hmac-sha256" {
		return nil, fmt.Errorf("read connection file %s: signature scheme %q is not supported", path, c.SignatureScheme)
	}
	return &c, nil
}
