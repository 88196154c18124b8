package clustertls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The files of a cluster TLS directory, as InitDir and IssueInto write them:
// CAFile and CAKeyFile, and for each certificate NAME.pem and NAME-key.pem.
// NodeName and ControlPlaneName are the certificates InitDir issues.
const (
	CAFile           = "ca.pem"
	CAKeyFile        = "ca-key.pem"
	NodeName         = "node"
	ControlPlaneName = "control-plane"
)

// CertFile is the certificate file of name in dir.
func CertFile(dir, name string) string { return filepath.Join(dir, name+".pem") }

// KeyFile is the key of certificate name in dir.
func KeyFile(dir, name string) string { return filepath.Join(dir, name+"-key.pem") }

// InitDir makes a new CA in dir (created, 0700) and issues from it a node
// certificate (NodeName) and a control-plane certificate (ControlPlaneName),
// both for hosts. Keys are written 0600. A directory that already holds a
// CA is refused: its certificates would stop being trusted.
func InitDir(dir string, hosts []string) error {
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return fmt.Errorf("init cluster TLS in %s: %w: it already holds a CA (%s)", dir, ErrInvalid, CAFile)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("init cluster TLS in %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init cluster TLS in %s: %w", dir, err)
	}
	ca, key, err := NewCA("Lelantos cluster CA", 0)
	if err != nil {
		return fmt.Errorf("init cluster TLS in %s: %w", dir, err)
	}
	if err := writeFiles(filepath.Join(dir, CAFile), ca.CertPEM, filepath.Join(dir, CAKeyFile), key); err != nil {
		return fmt.Errorf("init cluster TLS in %s: %w", dir, err)
	}
	if err := IssueInto(dir, NodeName, RoleNode, hosts); err != nil {
		return err
	}
	return IssueInto(dir, ControlPlaneName, RoleControlPlane, hosts)
}

// IssueInto issues a certificate for name in role (see CA.Issue) from the CA
// in dir, and writes it beside it.
func IssueInto(dir, name string, role Role, hosts []string) error {
	ca, err := loadCADir(dir)
	if err != nil {
		return fmt.Errorf("issue %s certificate %s: %w", role, name, err)
	}
	if name == "" || filepath.Base(name) != name || name == "ca" {
		return fmt.Errorf("issue %s certificate %q: %w: a plain file name other than ca is required", role, name, ErrInvalid)
	}
	cert, key, err := ca.Issue(name, role, hosts, 0)
	if err != nil {
		return err
	}
	if err := writeFiles(CertFile(dir, name), cert, KeyFile(dir, name), key); err != nil {
		return fmt.Errorf("issue %s certificate %s: %w", role, name, err)
	}
	return nil
}

// ServerConfigFromDir is ServerConfig of certificate name in dir, for
// clients in role clients.
func ServerConfigFromDir(dir, name string, clients Role) (*tls.Config, error) {
	ca, cert, key, err := readMaterial(dir, name)
	if err != nil {
		return nil, err
	}
	return ServerConfig(ca, cert, key, clients)
}

// ClientConfigFromDir is ClientConfig of certificate name in dir, for a
// server in role server named serverName ("": any name).
func ClientConfigFromDir(dir, name string, server Role, serverName string) (*tls.Config, error) {
	ca, cert, key, err := readMaterial(dir, name)
	if err != nil {
		return nil, err
	}
	return ClientConfig(ca, cert, key, server, serverName)
}

// loadCADir reads the CA of dir.
func loadCADir(dir string) (*CA, error) {
	cert, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	key, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA's key: %w", err)
	}
	return LoadCA(cert, key)
}

// readMaterial reads the CA certificate and certificate name of dir.
func readMaterial(dir, name string) (ca, cert, key []byte, err error) {
	for _, f := range []struct {
		path string
		to   *[]byte
	}{{filepath.Join(dir, CAFile), &ca}, {CertFile(dir, name), &cert}, {KeyFile(dir, name), &key}} {
		if *f.to, err = os.ReadFile(f.path); err != nil {
			return nil, nil, nil, fmt.Errorf("read cluster TLS file: %w", err)
		}
	}
	return ca, cert, key, nil
}

// writeFiles writes a certificate (0644) and its key (0600), refusing to
// replace either.
func writeFiles(certPath string, cert []byte, keyPath string, key []byte) error {
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{keyPath, key, 0o600}, {certPath, cert, 0o644}} {
		if err := writeNew(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// writeNew creates path with data and mode; an existing file is an error.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
