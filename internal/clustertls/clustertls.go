// Package clustertls is the cluster's certificate authority and the mutual
// TLS between the control plane and the node agents. The operator brings a
// CA or lets lelantos make one (NewCA); the CA issues each node and each
// control plane a certificate whose organizational unit is its role. A
// node's agent serves its RPC only to control-plane certificates of that CA
// (ServerConfig), and the control plane dials a node only as the node it
// registered as (ClientConfig), so one node cannot drive or impersonate
// another. Nodes that a scheduler starts may instead share a node issuer
// (NewNodeIssuer) and issue their own certificates; those are trusted only
// as nodes'.
package clustertls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Role is what a certificate the CA issues may do.
type Role int

const (
	// RoleNode certificates serve a node's agent RPC, and authenticate the
	// node when it reports to the control plane.
	RoleNode Role = iota + 1
	// RoleControlPlane certificates call node agents, and serve the control
	// plane's cluster endpoint nodes report to.
	RoleControlPlane
)

// String names the role as certificates' organizational unit does.
func (r Role) String() string {
	switch r {
	case RoleNode:
		return "node"
	case RoleControlPlane:
		return "control-plane"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ErrInvalid: a certificate, key or request that cannot be used; the message
// says which and why.
var ErrInvalid = errors.New("invalid cluster TLS material")

// ErrRefused: a peer whose certificate, though the CA's, is not in the role
// or of the name the connection needs.
var ErrRefused = errors.New("cluster peer refused")

// DefaultValidity is how long NewCA's and Issue's certificates last when
// asked for no validity.
const DefaultValidity = 5 * 365 * 24 * time.Hour

// CA is a certificate authority: its certificate and the key that signs.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	// CertPEM is the CA's certificate, which both sides trust.
	CertPEM []byte
}

// NewCA makes a CA named name, valid for validity from now (DefaultValidity
// when 0), with a new ECDSA P-256 key. KeyPEM is the key to keep secret.
func NewCA(name string, validity time.Duration) (ca *CA, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, fmt.Errorf("new cluster CA: a name is required: %w", ErrInvalid)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new cluster CA: generate key: %w", err)
	}
	tmpl, err := certTemplate(name, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("new cluster CA: %w", err)
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("new cluster CA: sign: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("new cluster CA: %w", err)
	}
	return &CA{cert: cert, key: key, CertPEM: pemBlock("CERTIFICATE", der)}, keyPEM, nil
}

// LoadCA reads a CA from its certificate and key in PEM (an operator's own
// CA may be RSA, ECDSA or Ed25519). The certificate must be a CA's.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w: %v", ErrInvalid, err)
	}
	cert := pair.Leaf
	if cert == nil {
		if cert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("load cluster CA: %w: %v", ErrInvalid, err)
		}
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load cluster CA: %w: the certificate of %q is not a CA's", ErrInvalid, cert.Subject.CommonName)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load cluster CA: %w: the key cannot sign", ErrInvalid)
	}
	return &CA{cert: cert, key: signer, CertPEM: certPEM}, nil
}

// Issue makes a certificate for name in role, valid for validity from now
// (DefaultValidity when 0), with a new ECDSA P-256 key, for both ends of a
// connection: every certificate is a client's and a server's, and its role,
// kept as its organizational unit, is what the peer checks. hosts are the DNS
// names and IP addresses the holder is reached at: at least one for a node;
// a control plane needs them only to serve its cluster endpoint.
func (ca *CA) Issue(name string, role Role, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, fmt.Errorf("issue certificate: a name is required: %w", ErrInvalid)
	}
	tmpl, err := certTemplate(name, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", name, err)
	}
	tmpl.Subject.OrganizationalUnit = []string{role.String()}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	switch role {
	case RoleNode:
		if len(hosts) == 0 {
			return nil, nil, fmt.Errorf("issue certificate for node %s: at least one host name or address is required: %w", name, ErrInvalid)
		}
	case RoleControlPlane:
		if isNodeIssuer(ca.cert) {
			return nil, nil, fmt.Errorf("issue certificate for %s: a node issuer issues only nodes' certificates: %w", name, ErrInvalid)
		}
	default:
		return nil, nil, fmt.Errorf("issue certificate for %s: unknown %v: %w", name, role, ErrInvalid)
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: generate key: %w", name, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: sign: %w", name, err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", name, err)
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

// ServerConfig is the TLS configuration of a server of the cluster (a node's
// agent, the control plane's cluster endpoint): its certificate, TLS 1.3, and
// a client certificate of the CA in caPEM, in role clients, required of every
// connection.
func ServerConfig(caPEM, certPEM, keyPEM []byte, clients Role) (*tls.Config, error) {
	pool, pair, err := material(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster server TLS: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error { return checkPeer(cs, clients, "") },
	}, nil
}

// ClientConfig is the TLS configuration of calls to a server of the cluster:
// its client certificate, TLS 1.3, and only certificates of the CA in caPEM
// trusted (not the system's roots), in role server and, when serverName is
// not empty, issued to that name: a node is dialled as the node it
// registered as, so that its address cannot be claimed by another node.
func ClientConfig(caPEM, certPEM, keyPEM []byte, server Role, serverName string) (*tls.Config, error) {
	pool, pair, err := material(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster client TLS: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error { return checkPeer(cs, server, serverName) }}, nil
}

// PeerName returns the name and role of the verified certificate of a
// connection's peer; ok is false without one.
func PeerName(cs tls.ConnectionState) (name string, role Role, ok bool) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", 0, false
	}
	leaf := cs.VerifiedChains[0][0]
	return leaf.Subject.CommonName, roleOf(leaf), true
}

// checkPeer refuses a connection whose peer's verified certificate is not in
// role want or, when name is not empty, not issued to name.
func checkPeer(cs tls.ConnectionState, want Role, name string) error {
	got, role, ok := PeerName(cs)
	switch {
	case !ok:
		return fmt.Errorf("cluster TLS: %w: the peer presented no verified certificate", ErrRefused)
	case role != want:
		return fmt.Errorf("cluster TLS: %w: %q holds a %v certificate, want a %v one", ErrRefused, got, role, want)
	case name != "" && got != name:
		return fmt.Errorf("cluster TLS: %w: the certificate is %q's, want %q's", ErrRefused, got, name)
	case role != RoleNode && byNodeIssuer(cs.VerifiedChains):
		return fmt.Errorf("cluster TLS: %w: %q holds a %v certificate of a node issuer, which issues only nodes'", ErrRefused, got, role)
	}
	return nil
}

// byNodeIssuer reports whether any of chains ends in a node issuer.
func byNodeIssuer(chains [][]*x509.Certificate) bool {
	for _, c := range chains {
		if len(c) > 0 && isNodeIssuer(c[len(c)-1]) {
			return true
		}
	}
	return false
}

// roleOf reads the role Issue wrote into a certificate (0 for none).
func roleOf(c *x509.Certificate) Role {
	if len(c.Subject.OrganizationalUnit) != 1 {
		return 0
	}
	for _, r := range []Role{RoleNode, RoleControlPlane} {
		if c.Subject.OrganizationalUnit[0] == r.String() {
			return r
		}
	}
	return 0
}

// material parses a CA certificate and a key pair.
func material(caPEM, certPEM, keyPEM []byte) (*x509.CertPool, tls.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, fmt.Errorf("%w: no CA certificate in the CA file", ErrInvalid)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return pool, pair, nil
}

// certTemplate is a certificate template for name, valid from a minute ago (a
// clock slightly behind) for validity.
func certTemplate(name string, validity time.Duration) (*x509.Certificate, error) {
	if validity < 0 {
		return nil, fmt.Errorf("negative validity %s: %w", validity, ErrInvalid)
	}
	if validity == 0 {
		validity = DefaultValidity
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name, Organization: []string{"Lelantos cluster"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity),
	}, nil
}

// encodeKey writes a private key as PKCS #8 PEM.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}
