package clustertls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// NodeIssuerOU is the organizational unit of a node issuer's certificate.
//
// A node issuer is a CA of its own, trusted beside the cluster CA (its
// certificate is appended to CAFile), whose certificates are trusted only
// as nodes': every peer refuses a control-plane certificate that chains to
// one (checkPeer). Nodes that are started by a scheduler (a Kubernetes
// DaemonSet) hold its key and issue their own certificate at start, for the
// name and address they are given; the cluster CA's key stays with the
// operator. Whoever holds the issuer's key can claim to be any node, never
// a control plane.
const NodeIssuerOU = "node-issuer"

// The node issuer's files in a cluster TLS directory.
const (
	NodeIssuerFile    = "node-issuer.pem"
	NodeIssuerKeyFile = "node-issuer-key.pem"
)

// isNodeIssuer reports whether c is a node issuer's certificate.
func isNodeIssuer(c *x509.Certificate) bool {
	return c.IsCA && slices.Equal(c.Subject.OrganizationalUnit, []string{NodeIssuerOU})
}

// NewNodeIssuer makes a node issuer valid for validity from now
// (DefaultValidity when 0). KeyPEM is the key its nodes share.
func NewNodeIssuer(validity time.Duration) (issuer *CA, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new node issuer: generate key: %w", err)
	}
	tmpl, err := certTemplate("Lelantos node issuer", validity)
	if err != nil {
		return nil, nil, fmt.Errorf("new node issuer: %w", err)
	}
	tmpl.Subject.OrganizationalUnit = []string{NodeIssuerOU}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("new node issuer: sign: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, fmt.Errorf("new node issuer: %w", err)
	}
	return &CA{cert: cert, key: key, CertPEM: pemBlock("CERTIFICATE", der)}, keyPEM, nil
}

// AddNodeIssuer makes a node issuer in the cluster TLS directory dir, which
// holds a CA (InitDir): NodeIssuerFile and NodeIssuerKeyFile, and the
// issuer's certificate appended to CAFile, so that every holder of the new
// CAFile trusts its nodes. A directory that has one already is refused.
func AddNodeIssuer(dir string) error {
	caPath := filepath.Join(dir, CAFile)
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		return fmt.Errorf("add a node issuer to %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, NodeIssuerFile)); err == nil {
		return fmt.Errorf("add a node issuer to %s: %w: it has one (%s)", dir, ErrInvalid, NodeIssuerFile)
	}
	issuer, key, err := NewNodeIssuer(0)
	if err != nil {
		return fmt.Errorf("add a node issuer to %s: %w", dir, err)
	}
	if err := writeFiles(filepath.Join(dir, NodeIssuerFile), issuer.CertPEM, filepath.Join(dir, NodeIssuerKeyFile), key); err != nil {
		return fmt.Errorf("add a node issuer to %s: %w", dir, err)
	}
	if err := replaceFile(caPath, append(slices.Clip(caPEM), issuer.CertPEM...), 0o644); err != nil {
		return fmt.Errorf("add a node issuer to %s: %w", dir, err)
	}
	return nil
}

// IssueSelf is how a node with the node issuer of issuerDir (CAFile,
// NodeIssuerFile, NodeIssuerKeyFile) makes its own certificate: it writes
// into dir (created, 0700) the trust bundle (CAFile) and certificate name
// (NAME.pem, NAME-key.pem) for hosts, replacing what a former start wrote.
func IssueSelf(issuerDir, dir, name string, hosts []string) error {
	if name == "" || filepath.Base(name) != name || name == "ca" {
		return fmt.Errorf("issue own node certificate %q: %w: a plain file name other than ca is required", name, ErrInvalid)
	}
	read := func(file string) ([]byte, error) { return os.ReadFile(filepath.Join(issuerDir, file)) }
	bundle, err := read(CAFile)
	if err != nil {
		return fmt.Errorf("issue own node certificate %s: %w", name, err)
	}
	certPEM, err := read(NodeIssuerFile)
	if err != nil {
		return fmt.Errorf("issue own node certificate %s: %w", name, err)
	}
	keyPEM, err := read(NodeIssuerKeyFile)
	if err != nil {
		return fmt.Errorf("issue own node certificate %s: %w", name, err)
	}
	issuer, err := LoadCA(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("issue own node certificate %s: %w", name, err)
	}
	if !isNodeIssuer(issuer.cert) {
		return fmt.Errorf("issue own node certificate %s: %w: %s is not a node issuer's", name, ErrInvalid, NodeIssuerFile)
	}
	cert, key, err := issuer.Issue(name, RoleNode, hosts, 0)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("issue own node certificate %s: %w", name, err)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{filepath.Join(dir, CAFile), bundle, 0o644}, {KeyFile(dir, name), key, 0o600}, {CertFile(dir, name), cert, 0o644}} {
		if err := replaceFile(f.path, f.data, f.mode); err != nil {
			return fmt.Errorf("issue own node certificate %s: %w", name, err)
		}
	}
	return nil
}

// replaceFile writes data to path with mode through a new file renamed over it.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".new"
	_ = os.Remove(tmp)
	if err := writeNew(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
