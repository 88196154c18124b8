package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tlsProxy runs a TLS proxy for domain with its certificates in dir and
// returns its address and the CA certificate (PEM).
func tlsProxy(t testing.TB, domain, dir string, r Resolver) (string, []byte) {
	t.Helper()
	p := newTestProxy(t, Config{Domain: domain, TLSDir: dir}, r)
	if got, want := p.CAPath(), filepath.Join(dir, "ca.pem"); got != want {
		t.Fatalf("CAPath = %q, want %q", got, want)
	}
	ca, err := os.ReadFile(p.CAPath())
	if err != nil {
		t.Fatal(err)
	}
	return serveProxy(t, p, true), ca
}

func parsePEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no certificate PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGeneratedCertificates checks the generated files: modes, algorithms,
// lifetimes, and which names the CA lets the leaf serve.
func TestGeneratedCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	p := newTestProxy(t, Config{Domain: "Sandbox.Test:443", TLSDir: dir}, fakeResolver{})
	modes := map[string]os.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600, "cert.pem": 0o644, "key.pem": 0o600}
	for name, want := range modes {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	ca := parsePEMCert(t, p.CAPath())
	leaf := parsePEMCert(t, filepath.Join(dir, "cert.pem"))
	for _, c := range []*x509.Certificate{ca, leaf} {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key is not ECDSA P-256", c.Subject.CommonName)
		}
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < 10*365*24*time.Hour {
		t.Errorf("CA valid for %v, want 10 years", life)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 365*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("leaf valid for %v, want one year", life)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	names := []struct {
		name string
		ok   bool
	}{
		{"49983-abc.sandbox.test", true},
		{"8080-x1y2.sandbox.test", true},
		{"sandbox.test", true},
		{"a.b.sandbox.test", false},
		{"49983-abc.other.test", false},
	}
	for _, n := range names {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: n.name, Roots: roots})
		if (err == nil) != n.ok {
			t.Errorf("verify leaf for %s: err %v, want ok=%v", n.name, err, n.ok)
		}
	}
	if len(ca.PermittedDNSDomains) != 1 || ca.PermittedDNSDomains[0] != "sandbox.test" {
		t.Errorf("CA name constraints %v, want [sandbox.test]", ca.PermittedDNSDomains)
	}
}

// TestCertificateReuse: a restart keeps the files; missing, expired or
// other-domain material is regenerated.
func TestCertificateReuse(t *testing.T) {
	dir := t.TempDir()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	newStore := func(domain string) {
		if _, err := New(Config{Domain: domain, TLSDir: dir, Logger: quietLogger(t)}, fakeResolver{}); err != nil {
			t.Fatal(err)
		}
	}
	newStore("one.test")
	ca1, leaf1 := read("ca.pem"), read("cert.pem")

	steps := []struct {
		name            string
		prepare         func()
		domain          string
		sameCA, sameLea bool
	}{
		{"restart", func() {}, "one.test", true, true},
		{"leaf missing", func() { os.Remove(filepath.Join(dir, "cert.pem")) }, "one.test", true, false},
		{"leaf key corrupt", func() { os.WriteFile(filepath.Join(dir, "key.pem"), []byte("junk"), 0o600) }, "one.test", true, false},
		{"new domain", func() {}, "two.test", false, false},
		{"ca key missing", func() { os.Remove(filepath.Join(dir, "ca-key.pem")) }, "two.test", false, false},
	}
	for _, s := range steps {
		s.prepare()
		newStore(s.domain)
		ca2, leaf2 := read("ca.pem"), read("cert.pem")
		if bytes.Equal(ca1, ca2) != s.sameCA || bytes.Equal(leaf1, leaf2) != s.sameLea {
			t.Errorf("%s: CA kept %v (want %v), leaf kept %v (want %v)", s.name,
				bytes.Equal(ca1, ca2), s.sameCA, bytes.Equal(leaf1, leaf2), s.sameLea)
		}
		if leaf := parsePEMCert(t, filepath.Join(dir, "cert.pem")); leaf.Subject.CommonName != "*."+s.domain {
			t.Errorf("%s: leaf for %s, want *.%s", s.name, leaf.Subject.CommonName, s.domain)
		}
		ca1, leaf1 = ca2, leaf2
	}

	// A leaf close to its end is renewed, by the same CA.
	s, err := newCertStore(dir, "two.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ensure(time.Now().Add(364 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(read("cert.pem"), leaf1) || !bytes.Equal(read("ca.pem"), ca1) {
		t.Errorf("expiring leaf: want a new leaf from the same CA")
	}
}

// TestHTTP2OverTLS: a client trusting the CA reaches the daemon port of a
// sandbox through TLS; HTTP/2 is negotiated when offered, HTTP/1.1 otherwise.
func TestHTTP2OverTLS(t *testing.T) {
	envdIP := envdBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-Proto") != "https" {
			http.Error(w, "want X-Forwarded-Proto https", http.StatusBadRequest)
			return
		}
		io.WriteString(w, r.Host)
	}))
	res := fakeResolver{targets: map[string]Target{"abc": {Address: envdIP}}}
	addr, ca := tlsProxy(t, "sandbox.test", t.TempDir(), res)
	for _, h2 := range []bool{true, false} {
		resp, err := proxyClient(t, addr, ca, h2).Get("https://49983-abc.sandbox.test/health")
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		body := readAll(t, resp)
		wantMajor := 1
		if h2 {
			wantMajor = 2
		}
		if resp.ProtoMajor != wantMajor || resp.StatusCode != http.StatusOK || body != "49983-abc.sandbox.test" {
			t.Errorf("h2=%v: proto %s, status %d, body %q", h2, resp.Proto, resp.StatusCode, body)
		}
	}
	// A client without the CA must not connect.
	if _, err := proxyClient(t, addr, nil, true).Get("https://49983-abc.sandbox.test/health"); err == nil {
		t.Errorf("a client without the CA connected")
	}
}

func TestNoTLSWithoutDomain(t *testing.T) {
	tests := []Config{{}, {Domain: "sandbox.test"}, {TLSDir: t.TempDir()}}
	for _, cfg := range tests {
		p := newTestProxy(t, cfg, fakeResolver{})
		if _, err := p.TLSConfig(); !errors.Is(err, ErrNoTLS) {
			t.Errorf("%+v: TLSConfig err %v, want ErrNoTLS", cfg, err)
		}
		if err := p.ServeTLS(t.Context(), nil); !errors.Is(err, ErrNoTLS) {
			t.Errorf("%+v: ServeTLS err %v, want ErrNoTLS", cfg, err)
		}
		if p.CAPath() != "" {
			t.Errorf("%+v: CAPath %q, want empty", cfg, p.CAPath())
		}
	}
}
