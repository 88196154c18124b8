package clustertls_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/clustertls"
)

// forgeControlPlane signs, with the node issuer's key in dir, what an
// attacker holding that key would make: a certificate whose organizational
// unit claims the control plane's role. It returns it as a key pair.
func forgeControlPlane(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	issuerPair := must(tls.LoadX509KeyPair(filepath.Join(dir, clustertls.NodeIssuerFile), filepath.Join(dir, clustertls.NodeIssuerKeyFile)))(t)
	issuer := must(x509.ParseCertificate(issuerPair.Certificate[0]))(t)
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7),
		Subject:   pkix.Name{CommonName: "control-plane", OrganizationalUnit: []string{"control-plane"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"cp.cluster.test"}}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerPair.PrivateKey))(t)
	keyDER := must(x509.MarshalPKCS8PrivateKey(key))(t)
	return must(tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))(t)
}

// TestNodeIssuer: a node that issued its own certificate from the node
// issuer is trusted as the node it named, and the issuer's key, which every
// such node holds, cannot make a control plane: a forged control-plane
// certificate is refused by node agents and by nodes dialling the cluster
// endpoint, and the issuer refuses to issue one.
func TestNodeIssuer(t *testing.T) {
	dir := t.TempDir()
	if err := clustertls.InitDir(dir, []string{"127.0.0.1", "cp.cluster.test"}); err != nil {
		t.Fatal(err)
	}
	if err := clustertls.AddNodeIssuer(dir); err != nil {
		t.Fatal(err)
	}
	if err := clustertls.AddNodeIssuer(dir); !errors.Is(err, clustertls.ErrInvalid) {
		t.Errorf("a second node issuer: %v, want ErrInvalid", err)
	}
	// The node's own directory gets the bundle and its certificate only.
	issuerDir := t.TempDir()
	for _, f := range []string{clustertls.CAFile, clustertls.NodeIssuerFile, clustertls.NodeIssuerKeyFile} {
		if err := os.WriteFile(filepath.Join(issuerDir, f), must(os.ReadFile(filepath.Join(dir, f)))(t), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nodeDir := filepath.Join(t.TempDir(), "tls")
	for range 2 { // a restart issues again over the former certificate
		if err := clustertls.IssueSelf(issuerDir, nodeDir, "worker-1", []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	plain := t.TempDir()
	if err := clustertls.InitDir(plain, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := clustertls.IssueSelf(plain, nodeDir, "worker-1", []string{"127.0.0.1"}); err == nil {
		t.Error("IssueSelf from a directory without a node issuer succeeded")
	}

	agent := serve(t, must(clustertls.ServerConfigFromDir(nodeDir, "worker-1", clustertls.RoleControlPlane))(t))
	cpAsClient := must(clustertls.ClientConfigFromDir(dir, clustertls.ControlPlaneName, clustertls.RoleNode, "worker-1"))(t)
	if body, err := get(agent, cpAsClient); err != nil || body != "ok" {
		t.Fatalf("the control plane calling the self-issued node: %q, %v", body, err)
	}
	wrongName := must(clustertls.ClientConfigFromDir(dir, clustertls.ControlPlaneName, clustertls.RoleNode, "worker-2"))(t)
	if _, err := get(agent, wrongName); err == nil {
		t.Error("the self-issued node answered when dialled as another node")
	}

	forged := forgeControlPlane(t, issuerDir)
	forgedClient := must(clustertls.ClientConfigFromDir(nodeDir, "worker-1", clustertls.RoleNode, "worker-1"))(t)
	forgedClient.Certificates = []tls.Certificate{forged}
	if body, err := get(agent, forgedClient); err == nil {
		t.Errorf("a node agent answered a control-plane certificate of the node issuer: %q", body)
	}
	// The forged certificate serving a cluster endpoint, which a node dials.
	fakeCP := must(clustertls.ServerConfigFromDir(dir, clustertls.ControlPlaneName, clustertls.RoleNode))(t)
	fakeCP.Certificates = []tls.Certificate{forged}
	endpoint := serve(t, fakeCP)
	nodeClient := must(clustertls.ClientConfigFromDir(nodeDir, "worker-1", clustertls.RoleControlPlane, ""))(t)
	nodeClient.ServerName = "cp.cluster.test"
	if body, err := get(endpoint, nodeClient); err == nil {
		t.Errorf("a node trusted a control plane of the node issuer: %q", body)
	}
	realCP := serve(t, must(clustertls.ServerConfigFromDir(dir, clustertls.ControlPlaneName, clustertls.RoleNode))(t))
	if body, err := get(realCP, nodeClient); err != nil || body != "ok" {
		t.Fatalf("the self-issued node calling the real control plane: %q, %v", body, err)
	}

	issuer := must(clustertls.LoadCA(must(os.ReadFile(filepath.Join(dir, clustertls.NodeIssuerFile)))(t),
		must(os.ReadFile(filepath.Join(dir, clustertls.NodeIssuerKeyFile)))(t)))(t)
	if _, _, err := issuer.Issue("cp", clustertls.RoleControlPlane, nil, time.Hour); !errors.Is(err, clustertls.ErrInvalid) {
		t.Errorf("the node issuer issued a control-plane certificate: %v", err)
	}
}
