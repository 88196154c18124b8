package proxy

import (
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
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Files in Config.TLSDir.
const (
	caCertFile   = "ca.pem"
	caKeyFile    = "ca-key.pem"
	leafCertFile = "cert.pem"
	leafKeyFile  = "key.pem"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how long before its end a certificate is replaced.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates clocks of clients that are a little behind.
	backdate = time.Hour
	// retryAfter spaces attempts to renew after a failure.
	retryAfter = time.Hour
)

// certStore holds the certificate for *.domain and domain, signed by a CA
// kept next to it, and renews both from disk or by generating them.
type certStore struct {
	dir, domain string

	mu        sync.Mutex
	cert      *tls.Certificate // Leaf is set
	nextCheck time.Time
}

// newCertStore loads or creates the TLS material in dir for domain.
func newCertStore(dir, domain string) (*certStore, error) {
	s := &certStore{dir: dir, domain: domain}
	if err := s.ensure(time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// caPath is the CA certificate clients must trust (NODE_EXTRA_CA_CERTS).
func (s *certStore) caPath() string { return filepath.Join(s.dir, caCertFile) }

// getCertificate is tls.Config.GetCertificate. A certificate close to its
// end is renewed; if renewal fails the current one is served meanwhile.
func (s *certStore) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.After(s.nextCheck) {
		if err := s.ensure(now); err != nil {
			s.nextCheck = now.Add(retryAfter)
		}
	}
	return s.cert, nil
}

// ensure makes dir hold a usable CA and leaf for s.domain and loads the
// leaf. Callers other than newCertStore hold s.mu.
func (s *certStore) ensure(now time.Time) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("tls dir %s: %w", s.dir, err)
	}
	ca, caKey, err := loadCA(s.dir)
	newCA := err != nil || !caUsable(ca, caKey, s.domain, now)
	if newCA {
		if ca, caKey, err = generateCA(s.domain, now); err != nil {
			return err
		}
		if err := writePEM(s.dir, caKeyFile, caCertFile, caKey, ca.Raw); err != nil {
			return err
		}
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.dir, leafCertFile), filepath.Join(s.dir, leafKeyFile))
	if newCA || err != nil || !leafUsable(cert.Leaf, ca, s.domain, now) {
		if cert, err = generateLeaf(ca, caKey, s.domain, now); err != nil {
			return err
		}
		if err := writePEM(s.dir, leafKeyFile, leafCertFile, cert.PrivateKey.(*ecdsa.PrivateKey), cert.Certificate[0]); err != nil {
			return err
		}
	}
	s.cert = &cert
	s.nextCheck = cert.Leaf.NotAfter.Add(-renewBefore)
	return nil
}

// loadCA reads the CA certificate and its P-256 key from dir.
func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("load CA: key is not ECDSA")
	}
	return pair.Leaf, key, nil
}

// caUsable reports whether ca is a CA limited to domain, valid long enough
// from now, whose key is key.
func caUsable(ca *x509.Certificate, key *ecdsa.PrivateKey, domain string, now time.Time) bool {
	return ca.IsCA && ca.BasicConstraintsValid &&
		ca.PublicKeyAlgorithm == x509.ECDSA && key.Curve == elliptic.P256() &&
		!now.Before(ca.NotBefore) && now.Add(renewBefore).Before(ca.NotAfter) &&
		slices.Equal(ca.PermittedDNSDomains, []string{domain})
}

// leafUsable reports whether leaf names exactly *.domain and domain, is
// signed by ca and is valid long enough from now.
func leafUsable(leaf, ca *x509.Certificate, domain string, now time.Time) bool {
	if leaf == nil || !now.Add(renewBefore).Before(leaf.NotAfter) {
		return false
	}
	names := slices.Clone(leaf.DNSNames)
	slices.Sort(names)
	if !slices.Equal(names, []string{"*." + domain, domain}) {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName: domain, Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err == nil
}

// generateCA creates a P-256 CA valid for 10 years whose name constraints
// allow only domain and its subdomains, so that trusting it risks no other
// name.
func generateCA(domain string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			Organization: []string{"Lelantos"},
			CommonName:   "Lelantos sandbox proxy CA for " + domain,
		},
		NotBefore:                   now.Add(-backdate),
		NotAfter:                    now.Add(caValidity),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{domain},
		ExcludedIPRanges: []*net.IPNet{
			{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		},
	}
	der, err := signCert(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse generated CA: %w", err)
	}
	return ca, key, nil
}

// generateLeaf creates a P-256 server certificate for *.domain and domain,
// valid for a year (never past the CA's end), signed by ca.
func generateLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, domain string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate certificate key: %w", err)
	}
	notAfter := now.Add(leafValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"Lelantos"}, CommonName: "*." + domain},
		DNSNames:              []string{"*." + domain, domain},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := signCert(tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate certificate for %s: %w", domain, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse generated certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// signCert gives tmpl a random serial number and signs it with parent.
func signCert(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

// writePEM stores key (mode 0600) and certificate der in dir, each file
// replaced atomically. The key goes first: a crash in between leaves a pair
// that does not match, which the next load regenerates.
func writePEM(dir, keyFile, certFile string, key *ecdsa.PrivateKey, der []byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key %s: %w", keyFile, err)
	}
	if err := writeFileAtomic(dir, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(dir, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFileAtomic writes data to dir/name through a temporary file and a
// rename, so readers never see a partial file.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
