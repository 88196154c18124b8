package image_test

import (
	"net/netip"
	"testing"

	"lelantos.dev/lelantos/internal/template/image"
)

// TestPublicAddr: pulls may dial global unicast addresses only.
func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"203.0.113.80": true, "8.8.8.8": true, "2606:4700::1111": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "0.1.2.3": false, "224.0.0.1": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "fd00::1": false, "fe80::1": false, "::": false,
	} {
		if got := image.PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %t, want %t", addr, got, want)
		}
	}
}
