package oci

import (
	"fmt"
	"slices"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IDRange maps a container's ids 0..Size-1 to host ids Host..Host+Size-1.
type IDRange struct {
	Host uint32
	Size uint32
}

// maskedPaths are hidden from a container on the host's kernel (a file reads as
// /dev/null, a directory as an empty read-only tmpfs): they show the host's memory,
// keys, timers, scheduler and firmware. This is the container ecosystem's default list.
func maskedPaths() []string {
	return []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// readonlyPaths are the host kernel's settings and triggers a container sees but
// may not change (the ecosystem's default list): /proc/sys holds core_pattern, whose
// pipe form would run a program as host root on the next core dump.
func readonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// hostCapabilities are capabilities that reach past a container on the host's
// kernel; Confine refuses a spec that grants any of them.
func hostCapabilities() []string {
	return []string{
		"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_BOOT",
		"CAP_SYS_TIME", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN", "CAP_DAC_READ_SEARCH",
		"CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG",
		"CAP_LINUX_IMMUTABLE", "CAP_IPC_LOCK", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
	}
}

// Confine makes s, the spec of a container that runs on the host's kernel (runc),
// a confined one:
//   - a user namespace: root inside is the unprivileged host id ids.Host, and so is
//     every id inside shifted into the range, so nothing inside is host root;
//   - a cgroup namespace, and a network namespace of its own when s joins none;
//   - no new privileges: set-user-ID programs (sudo) cannot raise a process's ids;
//   - the ecosystem's default seccomp profile for s's capabilities;
//   - the default masked and read-only paths of /proc and /sys;
//   - a device cgroup that denies every device the runtime does not add itself.
//
// It refuses a spec whose capabilities include one that reaches the host.
func Confine(s *specs.Spec, ids IDRange) error {
	if s.Process == nil || s.Linux == nil {
		return fmt.Errorf("confine spec: no process or linux section")
	}
	if ids.Size == 0 || ids.Host == 0 || uint64(ids.Host)+uint64(ids.Size) > 1<<32-1 {
		return fmt.Errorf("confine spec: id range %d+%d: must be non-empty, above host root and below 2^32-1", ids.Host, ids.Size)
	}
	if c := s.Process.Capabilities; c != nil {
		for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
			for _, name := range set {
				if slices.Contains(hostCapabilities(), name) {
					return fmt.Errorf("confine spec: capability %s reaches the host", name)
				}
			}
		}
	}
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: ids.Host, Size: ids.Size}}
	s.Linux.UIDMappings, s.Linux.GIDMappings = m, slices.Clone(m)
	s.Linux.Namespaces = append(s.Linux.Namespaces,
		specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	if !slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace }) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	s.Process.NoNewPrivileges = true
	s.Linux.MaskedPaths = maskedPaths()
	s.Linux.ReadonlyPaths = readonlyPaths()
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	s.Linux.Resources.Devices = append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, s.Linux.Resources.Devices...)
	profile, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return fmt.Errorf("confine spec: seccomp profile: %w", err)
	}
	s.Linux.Seccomp = profile
	return nil
}
