package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidation(t *testing.T) {
	base := Config{StateDir: "/tmp/x"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" for success
	}{
		{"defaults", func(*Config) {}, ""},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "StateDir"},
		{"ipv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, "not IPv4"},
		{"subnet too small", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.0.0.0/30") }, "between /8 and /29"},
		{"subnet host bits", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.231.0.1/16") }, "host bits"},
		{"prefix too long", func(c *Config) { c.NamePrefix = "abcdefgh" }, "NamePrefix"},
		{"prefix upper case", func(c *Config) { c.NamePrefix = "Lel" }, "NamePrefix"},
		{"prefix with dash", func(c *Config) { c.NamePrefix = "le-" }, "NamePrefix"},
		{"chain lower case", func(c *Config) { c.ChainPrefix = "lelantos" }, "ChainPrefix"},
		{"chain too long", func(c *Config) { c.ChainPrefix = strings.Repeat("A", 21) }, "ChainPrefix"},
		{"mtu too small", func(c *Config) { c.MTU = 100 }, "MTU"},
		{"bad extra block", func(c *Config) { c.ExtraBlocked = []netip.Prefix{netip.MustParsePrefix("::/0")} }, "ExtraBlocked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			got, err := c.withDefaults()
			if tt.want == "" {
				if err != nil || got.Subnet != DefaultSubnet || got.NamePrefix != "lel" || got.ChainPrefix != "LELANTOS" || got.NetNSDir != "/run/netns" {
					t.Fatalf("withDefaults = %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want ErrInvalidConfig mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSandboxIDValidation(t *testing.T) {
	for id, ok := range map[string]bool{
		"abc123": true, "a.b_c-d": true, strings.Repeat("a", 128): true,
		"": false, "../x": false, ".hidden": false, "a/b": false, "a b": false, strings.Repeat("a", 129): false,
	} {
		if err := validateSandboxID(id); (err == nil) != ok || (err != nil && !errors.Is(err, ErrInvalidSandboxID)) {
			t.Errorf("validateSandboxID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestPool(t *testing.T) {
	p := newPool(netip.MustParsePrefix("10.231.0.0/28")) // 4 slots
	tests := []struct {
		slot     int
		gw, addr string
	}{
		{0, "10.231.0.1", "10.231.0.2"},
		{1, "10.231.0.5", "10.231.0.6"},
		{3, "10.231.0.13", "10.231.0.14"},
	}
	for _, tt := range tests {
		gw, addr := p.addrs(tt.slot)
		if gw.String() != tt.gw || addr.String() != tt.addr {
			t.Errorf("addrs(%d) = %s, %s; want %s, %s", tt.slot, gw, addr, tt.gw, tt.addr)
		}
		if s, err := p.slotOf(addr); err != nil || s != tt.slot {
			t.Errorf("slotOf(%s) = %d, %v; want %d", addr, s, err, tt.slot)
		}
	}
	for _, bad := range []string{"10.231.0.1", "10.231.0.16", "10.230.0.2", "10.231.0.3"} {
		if _, err := p.slotOf(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("slotOf(%s) accepted a non-sandbox address", bad)
		}
	}
	seen := map[int]bool{}
	for range 4 {
		s, err := p.take()
		if err != nil || seen[s] {
			t.Fatalf("take = %d, %v (seen %v)", s, err, seen)
		}
		seen[s] = true
	}
	if _, err := p.take(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("take on a full pool = %v, want ErrExhausted", err)
	}
	p.free(2)
	if s, err := p.take(); err != nil || s != 2 {
		t.Fatalf("take after free(2) = %d, %v", s, err)
	}
}

func TestLinkName(t *testing.T) {
	re := linkNameRE("lel")
	a, b := linkName("lel", "sbx", 0), linkName("lel", "sbx", 1)
	if len(a) != 15 || !re.MatchString(a) || a == b || a != linkName("lel", "sbx", 0) {
		t.Fatalf("linkName: %q, %q", a, b)
	}
	for _, n := range []string{"lel", "lelconf11497-12", "lel0123456789ab0", "eth0"} {
		if re.MatchString(n) {
			t.Errorf("pattern matches foreign name %q", n)
		}
	}
}

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	r := &record{Version: recordVersion, SandboxID: "s1", Address: netip.MustParseAddr("10.231.0.2"),
		Gateway: netip.MustParseAddr("10.231.0.1"), PrefixLen: 30, HostVeth: "lelx", NetNS: "lelx"}
	if err := writeRecord(dir, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-s2-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadRecords(dir)
	if err != nil || len(got) != 1 || *got[0] != *r {
		t.Fatalf("loadRecords = %+v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-s2-123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary record not removed: %v", err)
	}
	for name, body := range map[string]string{
		"corrupt.json": "{",
		"renamed.json": `{"version":1,"sandbox_id":"other"}`,
		"version.json": `{"version":9,"sandbox_id":"version"}`,
	} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadRecords(d); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("loadRecords with %s = %v, want an error naming it", name, err)
		}
	}
	if err := removeRecord(dir, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := removeRecord(dir, "s1"); err != nil {
		t.Errorf("second removeRecord: %v", err)
	}
}
