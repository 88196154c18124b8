package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pki is the test cluster's certificates, written into dir: one CA that
// signs the API server's serving certificate and the administrator's client
// certificate (system:masters) every component uses, and the service
// account signing key.
type pki struct {
	dir string
	// CA, ServerCert, ServerKey, AdminCert, AdminKey, SAKey, SAPub are file
	// paths under dir.
	CA, ServerCert, ServerKey, AdminCert, AdminKey, SAKey, SAPub string
}

// newPKI writes the cluster's certificates into dir for an API server
// reached at ips.
func newPKI(t *testing.T, dir string, ips []net.IP) *pki {
	t.Helper()
	p := &pki{dir: dir}
	file := func(name string) string { return filepath.Join(dir, name) }
	p.CA, p.ServerCert, p.ServerKey = file("ca.pem"), file("apiserver.pem"), file("apiserver-key.pem")
	p.AdminCert, p.AdminKey, p.SAKey, p.SAPub = file("admin.pem"), file("admin-key.pem"), file("sa-key.pem"), file("sa.pub")

	caKey := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lelantos-test-kubernetes-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER := must(x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey))(t)
	ca := must(x509.ParseCertificate(caDER))(t)
	writePEM(t, p.CA, "CERTIFICATE", caDER)

	issue := func(certPath, keyPath string, tmpl *x509.Certificate) {
		key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		writePEM(t, certPath, "CERTIFICATE", must(x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey))(t))
		writePEM(t, keyPath, "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(key))(t))
	}
	issue(p.ServerCert, p.ServerKey, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: ips,
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}})
	issue(p.AdminCert, p.AdminKey, &x509.Certificate{SerialNumber: big.NewInt(3),
		Subject:     pkix.Name{CommonName: "lelantos-test-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	sa := must(rsa.GenerateKey(rand.Reader, 2048))(t)
	writePEM(t, p.SAKey, "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(sa))(t))
	writePEM(t, p.SAPub, "PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&sa.PublicKey))(t))
	return p
}

// kubeconfig writes a kubeconfig for server with the administrator's
// certificate and returns its path.
func (p *pki) kubeconfig(t *testing.T, server string) string {
	t.Helper()
	b64 := func(path string) string { return base64.StdEncoding.EncodeToString(must(os.ReadFile(path))(t)) }
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: admin
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, server, b64(p.CA), b64(p.AdminCert), b64(p.AdminKey))
	path := filepath.Join(p.dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// must fails t on err, else returns v.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
