// Package oci writes the OCI runtime bundles that runsc and runc start sandboxes from.
package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"lelantos.dev/lelantos/internal/runtime"
)

// CgroupParent is the cgroup under which every sandbox's cgroup is made.
const CgroupParent = "lelantos"

// CgroupPath is the cgroup path, relative to each hierarchy's root, of sandbox id.
func CgroupPath(id string) string { return "/" + CgroupParent + "/" + id }

// capabilities a sandbox's processes hold: the usual container set, so that root
// inside can change owners, bind low ports and switch users.
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
	"CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
}

// Spec builds the OCI spec of a sandbox whose root is rootPath.
func Spec(id string, cfg runtime.Config, rootPath string) *specs.Spec {
	caps := append([]string(nil), capabilities...)
	memLimit := int64(cfg.MemoryMB) << 20
	period := uint64(100000)
	quota := int64(cfg.CPUCount) * int64(period)
	shares := cfg.CPUWeight
	if shares == 0 {
		shares = runtime.CPUWeightNormal
	}
	pids := int64(cfg.PidsLimit)
	if pids == 0 {
		pids = 4096
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: cfg.Args,
			Env:  cfg.Env,
			Cwd:  "/",
			User: specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
		},
		Root:     &specs.Root{Path: rootPath},
		Hostname: cfg.Hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: CgroupPath(id),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			Resources: &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: &memLimit},
				CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares},
				Pids:   &specs.LinuxPids{Limit: pids},
			},
		},
	}
	if cfg.NetNSPath != "" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: cfg.NetNSPath})
	}
	for _, m := range cfg.Mounts {
		if m.Writable {
			s.Mounts = append(s.Mounts, WritableBindMount(m.Source, m.Destination))
			continue
		}
		s.Mounts = append(s.Mounts, BindMount(m.Source, m.Destination))
	}
	return s
}

// BindMount is a read-only bind mount of host path src at dst.
func BindMount(src, dst string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "ro"}}
}

// WritableBindMount is a read-write bind mount of host path src at dst, in which
// set-user-ID bits and device nodes have no effect.
func WritableBindMount(src, dst string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rw", "nosuid", "nodev"}}
}

// WriteBundle writes spec as config.json into dir, creating dir.
func WriteBundle(dir string, spec *specs.Spec) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write bundle %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(spec, "", " ")
	if err != nil {
		return fmt.Errorf("write bundle %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("write bundle %s: %w", dir, err)
	}
	return nil
}
