package oci

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"lelantos.dev/lelantos/internal/runtime"
)

func baseSpec(netns string) *specs.Spec {
	return Spec("box", runtime.Config{Args: []string{"/init"}, CPUCount: 1, MemoryMB: 64, NetNSPath: netns}, "/root")
}

func TestConfine(t *testing.T) {
	ids := IDRange{Host: 1_000_000_000, Size: 65536}
	for _, netns := range []string{"", "/run/netns/box"} {
		s := baseSpec(netns)
		if err := Confine(s, ids); err != nil {
			t.Fatalf("confine (netns %q): %v", netns, err)
		}
		count := map[specs.LinuxNamespaceType]int{}
		for _, n := range s.Linux.Namespaces {
			count[n.Type]++
		}
		for _, want := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.CgroupNamespace, specs.NetworkNamespace, specs.PIDNamespace, specs.MountNamespace} {
			if count[want] != 1 {
				t.Errorf("netns %q: %d %s namespaces, want 1", netns, count[want], want)
			}
		}
		m := specs.LinuxIDMapping{ContainerID: 0, HostID: ids.Host, Size: ids.Size}
		if !slices.Equal(s.Linux.UIDMappings, []specs.LinuxIDMapping{m}) || !slices.Equal(s.Linux.GIDMappings, []specs.LinuxIDMapping{m}) {
			t.Errorf("mappings %v %v, want %v", s.Linux.UIDMappings, s.Linux.GIDMappings, m)
		}
		if !s.Process.NoNewPrivileges {
			t.Error("noNewPrivileges is off")
		}
		if sc := s.Linux.Seccomp; sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) == 0 {
			t.Errorf("seccomp %+v, want the default profile (errno by default)", sc)
		}
		for _, p := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware"} {
			if !slices.Contains(s.Linux.MaskedPaths, p) {
				t.Errorf("%s is not masked", p)
			}
		}
		for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger"} {
			if !slices.Contains(s.Linux.ReadonlyPaths, p) {
				t.Errorf("%s is not read-only", p)
			}
		}
		if d := s.Linux.Resources.Devices; len(d) == 0 || d[0].Allow || d[0].Access != "rwm" {
			t.Errorf("device rules %+v, want deny-all first", d)
		}
	}
}

func TestConfineRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*specs.Spec)
		ids  IDRange
		want string
	}{
		{"CAP_SYS_ADMIN", func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		}, IDRange{Host: 100000, Size: 65536}, "CAP_SYS_ADMIN reaches the host"},
		{"CAP_SYS_PTRACE ambient", func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"CAP_SYS_PTRACE"} },
			IDRange{Host: 100000, Size: 65536}, "CAP_SYS_PTRACE"},
		{"root mapped to host root", nil, IDRange{Host: 0, Size: 65536}, "above host root"},
		{"empty range", nil, IDRange{Host: 100000}, "non-empty"},
		{"range past the last id", nil, IDRange{Host: 1<<32 - 100, Size: 65536}, "below 2^32-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSpec("")
			if tt.edit != nil {
				tt.edit(s)
			}
			if err := Confine(s, tt.ids); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("confine: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
