package template

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/saferoot"
)

// dnsFiles writes the /etc/hosts and /etc/resolv.conf a RUN step sees into dir.
//
// Sandboxes may never reach private addresses, and a host's resolver often has one
// (here 10.255.255.53), so name lookups inside fail. The hosts file therefore carries
// the addresses, resolved on the host now, of the names in BuilderOptions.ExtraHosts,
// or by default of the hosts the tree's APT sources name.
func (b *Builder) dnsFiles(ctx context.Context, st *buildState, tree *saferoot.Root, dir string) (hosts, resolv string, err error) {
	names := b.opts.ExtraHosts
	if names == nil {
		names = aptHosts(tree)
	}
	var hb strings.Builder
	hb.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tlelantos\n")
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, n := range names {
		ips, err := net.DefaultResolver.LookupIP(rctx, "ip4", n)
		if err != nil || len(ips) == 0 {
			st.log.infof("warning: cannot resolve %s for the build: %v", n, err)
			continue
		}
		fmt.Fprintf(&hb, "%s\t%s\n", ips[0], n)
	}
	hosts = filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte(hb.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("write build hosts file: %w", err)
	}
	var rb strings.Builder
	servers := b.opts.Nameservers
	if servers == nil {
		servers = hostNameservers()
	}
	for _, s := range servers {
		fmt.Fprintf(&rb, "nameserver %s\n", s)
	}
	rb.WriteString("options timeout:2 attempts:2\n")
	resolv = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte(rb.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("write build resolv.conf: %w", err)
	}
	return hosts, resolv, nil
}

// hostNameservers are the nameservers of the host's /etc/resolv.conf, loopback ones
// excepted (they would be the sandbox's own).
func hostNameservers() []string {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip != nil && !ip.IsLoopback() {
				out = append(out, f[1])
			}
		}
	}
	return out
}

var urlHostRE = regexp.MustCompile(`(?i)\bhttps?://([a-z0-9.-]+)`)

// maxSourcesFile bounds what is read of one APT sources file of a tree.
const maxSourcesFile = 1 << 20

// aptHosts returns the host names of the tree's APT sources.
func aptHosts(tree *saferoot.Root) []string {
	files := []string{"/etc/apt/sources.list"}
	if ents, err := tree.ReadDir("/etc/apt/sources.list.d"); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".list") || strings.HasSuffix(e.Name(), ".sources") {
				files = append(files, "/etc/apt/sources.list.d/"+e.Name())
			}
		}
	}
	var hosts []string
	for _, f := range files {
		data, err := tree.ReadFile(f, maxSourcesFile)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range urlHostRE.FindAllStringSubmatch(line, -1) {
				hosts = append(hosts, strings.ToLower(m[1]))
			}
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
