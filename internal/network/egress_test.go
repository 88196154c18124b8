package network

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseEgress(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		name        string
		allow, deny []string
		want        *Egress
		wantErr     string // substring; "" for success
	}{
		{name: "nothing", want: nil},
		{name: "only IPv6 deny", deny: []string{"::/0", "2001:db8::1"}, want: nil},
		{name: "addresses become /32", allow: []string{"1.1.1.1"}, deny: []string{"0.0.0.0/0"},
			want: &Egress{AllowCIDRs: []netip.Prefix{pfx("1.1.1.1/32")}, DenyCIDRs: []netip.Prefix{pfx("0.0.0.0/0")}}},
		{name: "CIDRs are masked and duplicates dropped", deny: []string{"8.8.8.8/8", "8.0.0.0/8", " 9.9.9.9 "},
			want: &Egress{DenyCIDRs: []netip.Prefix{pfx("8.0.0.0/8"), pfx("9.9.9.9/32")}}},
		{name: "domains are lower-cased", allow: []string{"Example.COM.", "*.Example.com", "*", "example.com"},
			deny: []string{"0.0.0.0/0"},
			want: &Egress{AllowDomains: []string{"example.com", "*.example.com", "*"}, DenyCIDRs: []netip.Prefix{pfx("0.0.0.0/0")}}},
		{name: "mapped IPv4 address", allow: []string{"::ffff:1.2.3.4"},
			want: &Egress{AllowCIDRs: []netip.Prefix{pfx("1.2.3.4/32")}}},
		{name: "bad CIDR", allow: []string{"1.2.3.4/33"}, wantErr: "not a CIDR"},
		{name: "IPv6 allow", allow: []string{"2001:db8::/32"}, wantErr: "IPv6"},
		{name: "bad IPv6 address", allow: []string{"2001:db8::zz"}, wantErr: "not an IP address"},
		{name: "unspecified deny", deny: []string{"0.0.0.0"}, wantErr: "unspecified"},
		{name: "unspecified IPv6 deny", deny: []string{"::"}, wantErr: "unspecified"},
		{name: "domain deny", deny: []string{"example.com"}, wantErr: "not an IP address or CIDR"},
		{name: "bad domain", allow: []string{"exa mple.com"}, wantErr: "domain name"},
		{name: "inner wildcard", allow: []string{"a.*.example.com"}, wantErr: "domain name"},
		{name: "wildcard of nothing", allow: []string{"*.."}, wantErr: "domain name"},
		{name: "empty", allow: []string{""}, wantErr: "domain name"},
		{name: "label too long", allow: []string{strings.Repeat("a", 64) + ".com"}, wantErr: "domain name"},
		{name: "leading hyphen", allow: []string{"-a.com"}, wantErr: "domain name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEgress(tt.allow, tt.deny)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidEgress) {
					t.Fatalf("ParseEgress = %+v, %v; want an ErrInvalidEgress containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEgress: %v", err)
			}
			if !got.equal(tt.want) || (got == nil) != (tt.want == nil) {
				t.Fatalf("ParseEgress = %+v, want %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("a parsed Egress fails check: %v", err)
			}
		})
	}
}

func TestEgressPrecedence(t *testing.T) {
	e, err := ParseEgress(
		[]string{"1.1.1.1", "10.9.0.0/16", "api.example.com", "*.cdn.example.net"},
		[]string{"1.0.0.0/8", "0.0.0.0/0"})
	if err != nil {
		t.Fatal(err)
	}
	partial, err := ParseEgress(nil, []string{"8.8.8.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		e        *Egress
		host, ip string
		want     bool
	}{
		{e, "", "1.1.1.1", true},  // allow beats deny
		{e, "", "1.1.1.2", false}, // denied
		{e, "", "10.9.3.4", true}, // allowed CIDR
		{e, "", "9.9.9.9", false}, // deny all
		{e, "api.example.com", "9.9.9.9", true},
		{e, "API.Example.Com.", "9.9.9.9", true},
		{e, "example.com", "9.9.9.9", false}, // only the exact name
		{e, "x.api.example.com", "9.9.9.9", false},
		{e, "a.cdn.example.net", "9.9.9.9", true},
		{e, "a.b.cdn.example.net", "9.9.9.9", true}, // any depth
		{e, "cdn.example.net", "9.9.9.9", false},    // not the apex
		{e, "xcdn.example.net", "9.9.9.9", false},
		{e, "evil.com", "1.1.1.1", true}, // an unmatched name falls back to the address
		{partial, "", "8.8.8.8", false},
		{partial, "", "8.8.9.8", true},
		{nil, "", "8.8.8.8", true},
	}
	for _, tt := range tests {
		got := tt.e.allowsName(tt.host) || tt.e.allowsAddr(netip.MustParseAddr(tt.ip))
		if got != tt.want {
			t.Errorf("rules %v: host %q ip %s allowed = %v, want %v", tt.e, tt.host, tt.ip, got, tt.want)
		}
	}
	star, _ := ParseEgress([]string{"*"}, []string{"0.0.0.0/0"})
	if !star.allowsName("anything.at.all") || star.allowsName("") {
		t.Error(`"*" must match every name, and no connection without one`)
	}
	if !e.resolvable("api.example.com") || e.resolvable("evil.com") {
		t.Error("with all traffic denied, only allowed names resolve")
	}
	if !partial.resolvable("evil.com") {
		t.Error("without a deny-all rule every name resolves")
	}
	allow, deny := e.Strings()
	if !slices.Equal(allow, []string{"1.1.1.1/32", "10.9.0.0/16", "api.example.com", "*.cdn.example.net"}) ||
		!slices.Equal(deny, []string{"1.0.0.0/8", "0.0.0.0/0"}) {
		t.Errorf("Strings = %v, %v", allow, deny)
	}
}

func TestEgressCheckRefusesHandMadeRules(t *testing.T) {
	for _, e := range []*Egress{
		{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")}},
		{DenyCIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}},
		{AllowDomains: []string{"Example.com"}},
		{AllowDomains: []string{"bad domain"}},
	} {
		if err := e.Validate(); !errors.Is(err, ErrInvalidEgress) {
			t.Errorf("check(%+v) = %v, want ErrInvalidEgress", e, err)
		}
	}
}

func TestQuestionName(t *testing.T) {
	pointer := buildQuery(7, "a.example.com")
	pointer = append(pointer[:dnsHeaderLen], 0xc0, 12, 0, 1, 0, 1)
	dotted := buildQuery(7, "x.com")
	dotted[dnsHeaderLen+1] = '.'
	tests := []struct {
		name  string
		query []byte
		want  string
		ok    bool
	}{
		{"plain", buildQuery(1, "API.Example.com"), "api.example.com", true},
		{"root", append(buildQuery(1, "x")[:dnsHeaderLen], 0, 0, 1, 0, 1), "", false},
		{"pointer", pointer, "", false},
		{"dot inside a label", dotted, "", false},
		{"truncated", buildQuery(1, "example.com")[:16], "", false},
		{"short", []byte{1, 2, 3}, "", false},
	}
	for _, tt := range tests {
		got, ok := questionName(tt.query)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: questionName = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEgressRulesRendering(t *testing.T) {
	f := &firewall{chain: "LT", iface: "lt+"}
	e, _ := ParseEgress([]string{"1.1.1.1", "example.com"}, []string{"0.0.0.0/0"})
	cidrOnly, _ := ParseEgress(nil, []string{"8.8.8.8"})
	all := []sandboxRules{{veth: "lta", slot: 40, egress: e}, {veth: "ltb", slot: 3, egress: cidrOnly}}
	got := f.egressRulesV4(all, all[:1], []int{7})
	for _, want := range []string{
		":LT-EGR - [0:0]\n", ":LT-S14 - [0:0]\n", ":LT-S7 - [0:0]\n",
		"-A LT-EGR -i lta -j LT-S14\n", "-A LT-EGR -i ltb -j LT-S3\n",
		"-A LT-S14 -p tcp -m connmark ! --mark 0/0xc000000 -j LT-EC\n",
		"-A LT-S14 -d 1.1.1.1/32 -j RETURN\n",
		"-A LT-S14 -p tcp -d 0.0.0.0/0 -j REJECT --reject-with tcp-reset\n",
		"-A LT-S14 -d 0.0.0.0/0 -j REJECT --reject-with icmp-admin-prohibited\n",
		"-X LT-S7\n",
		":LT-EGRNAT - [0:0]\n",
		"-A LT-EGRNAT -i lta -p tcp -m multiport --dports 80,443 -j LT-EQ\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "-i ltb -p tcp -m multiport") {
		t.Errorf("a sandbox without domain rules is redirected:\n%s", got)
	}
	if strings.Contains(got, "-A LT-S3 -p tcp -m connmark") {
		t.Errorf("a sandbox without domain rules enters the checker's chain:\n%s", got)
	}
	if strings.Contains(got, ":LT-S3 ") {
		t.Errorf("the chain of a sandbox not being changed is redeclared (flushed):\n%s", got)
	}
	for _, c := range []string{"LT-EGR", "LT-PXIN", "LT-PX", "LT-EQ", "LT-EC", "LT-S0", "LT-SZZ"} {
		if !f.isEgressChain(c) {
			t.Errorf("isEgressChain(%q) = false", c)
		}
	}
	for _, c := range []string{"LT-EGRNAT", "LT-IN", "LT-S", "LT-S-1", "LTX-S1", "LT-DNS"} {
		if f.isEgressChain(c) {
			t.Errorf("isEgressChain(%q) = true", c)
		}
	}
	// The longest chain name fits iptables' 28 bytes.
	long := &firewall{chain: strings.Repeat("L", 20)}
	if n := len(long.sandboxChain(1<<22 - 1)); n > 28 {
		t.Errorf("sandbox chain name is %d bytes", n)
	}
}

func TestProxyRulesRendering(t *testing.T) {
	f := &firewall{chain: "LT", iface: "lt+"}
	for _, tt := range []struct {
		name        string
		port, queue int
		want, not   []string
	}{
		{"proxy and checker", 4000, 77,
			[]string{
				"-A LT-EQ -m mark --mark 0x4000000/0xc000000 -j CONNMARK --set-xmark 0x4000000/0xc000000\n",
				"-A LT-EQ -m mark --mark 0xc000000/0xc000000 -j LT-PX\n",
				"-A LT-EQ -j NFQUEUE --queue-num 77\n",
				"-A LT-EC -m connmark --mark 0x8000000/0xc000000 -m devgroup --src-group 0x4c454c01 -j ACCEPT\n",
				"-A LT-EC -p tcp -m connmark --mark 0xc000000/0xc000000 -j REJECT --reject-with tcp-reset\n",
				"-A LT-EC -m connmark --mark 0x4000000/0xc000000 -m devgroup --src-group 0x4c454c01 -j NFQUEUE --queue-num 77\n",
				"-A LT-EC -j DROP\n",
				"-A LT-PX -p tcp -j REDIRECT --to-ports 4000\n",
			}, nil},
		{"proxy alone", 4000, -1,
			[]string{"-A LT-EQ -j LT-PX\n", "-A LT-PX -p tcp -j REDIRECT --to-ports 4000\n"},
			[]string{"NFQUEUE", "-A LT-EC"}},
		{"neither", 0, -1, []string{":LT-EQ - [0:0]\n", ":LT-EC - [0:0]\n"}, []string{"-A "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := f.proxyRulesV4(tt.port, tt.queue)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("rules lack %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("rules hold %q:\n%s", n, got)
				}
			}
		})
	}
}
