package clustertls_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/clustertls"
)

// serve runs an HTTPS server with cfg on loopback answering "ok", and
// returns its address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// get calls the server at addr with cfg and returns its body.
func get(addr string, cfg *tls.Config) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	res, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
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

// TestMutualTLS: the agent's server answers only a control-plane
// certificate of its own CA, and the control plane trusts only node
// certificates of its CA for the name it dials.
func TestMutualTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	if err := clustertls.InitDir(dir, []string{"127.0.0.1", "node-a.cluster.test"}); err != nil {
		t.Fatal(err)
	}
	if err := clustertls.InitDir(other, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, must(clustertls.ServerConfigFromDir(dir, clustertls.NodeName, clustertls.RoleControlPlane))(t))
	client := func(d, name string) *tls.Config {
		return must(clustertls.ClientConfigFromDir(d, name, clustertls.RoleNode, clustertls.NodeName))(t)
	}

	// A node certificate presented as a client's: same CA, wrong role.
	nodeAsClient := client(dir, clustertls.ControlPlaneName)
	pair := must(tls.LoadX509KeyPair(clustertls.CertFile(dir, clustertls.NodeName), clustertls.KeyFile(dir, clustertls.NodeName)))(t)
	nodeAsClient.Certificates = []tls.Certificate{pair}
	// No client certificate at all.
	anonymous := client(dir, clustertls.ControlPlaneName)
	anonymous.Certificates = nil
	// The right certificate, dialled under a name the node's certificate lacks.
	wrongName := client(dir, clustertls.ControlPlaneName)
	wrongName.ServerName = "node-b.cluster.test"
	// The system's roots instead of the cluster CA.
	systemRoots := client(dir, clustertls.ControlPlaneName)
	systemRoots.RootCAs = nil

	for _, tt := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"the control plane's certificate", client(dir, clustertls.ControlPlaneName), true},
		{"another CA's control-plane certificate", client(other, clustertls.ControlPlaneName), false},
		{"a node's certificate as a client's", nodeAsClient, false},
		{"no client certificate", anonymous, false},
		{"a server name the node's certificate does not hold", wrongName, false},
		{"the node checked against the system's roots", systemRoots, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := get(addr, tt.cfg)
			switch {
			case tt.ok && (err != nil || body != "ok"):
				t.Fatalf("got %q, %v; want ok", body, err)
			case !tt.ok && err == nil:
				t.Fatalf("answered %q; want the connection refused", body)
			}
		})
	}
	t.Run("plain HTTP", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		b, _ := io.ReadAll(c)
		if strings.Contains(string(b), "ok") && !strings.Contains(string(b), "400") {
			t.Fatalf("plain HTTP answered %q", b)
		}
	})
}

// TestDirRefusesReuse: a directory's CA is never replaced, certificates are
// never overwritten, keys are private to their owner, and names stay in the
// directory.
func TestDirRefusesReuse(t *testing.T) {
	dir := t.TempDir()
	if err := clustertls.InitDir(dir, []string{"10.0.0.5"}); err != nil {
		t.Fatal(err)
	}
	if err := clustertls.InitDir(dir, []string{"10.0.0.5"}); !errors.Is(err, clustertls.ErrInvalid) {
		t.Errorf("InitDir of a directory with a CA = %v, want ErrInvalid", err)
	}
	if err := clustertls.IssueInto(dir, clustertls.NodeName, clustertls.RoleNode, []string{"x"}); err == nil {
		t.Error("IssueInto over an existing certificate succeeded")
	}
	for _, name := range []string{"", "../escape", "a/b", "ca"} {
		if err := clustertls.IssueInto(dir, name, clustertls.RoleNode, []string{"x"}); !errors.Is(err, clustertls.ErrInvalid) {
			t.Errorf("IssueInto(%q) = %v, want ErrInvalid", name, err)
		}
	}
	if err := clustertls.IssueInto(dir, "node-b", clustertls.RoleNode, nil); !errors.Is(err, clustertls.ErrInvalid) {
		t.Errorf("a node certificate without hosts: %v, want ErrInvalid", err)
	}
	if err := clustertls.IssueInto(dir, "node-b", clustertls.RoleNode, []string{"node-b.test"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{clustertls.CAKeyFile, "node-key.pem", "control-plane-key.pem", "node-b-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.pem")); err == nil {
		t.Error("a certificate was written outside the directory")
	}
}

// TestLoadCARefusesALeaf: a leaf certificate is not a CA.
func TestLoadCARefusesALeaf(t *testing.T) {
	ca, _, err := clustertls.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue("n", clustertls.RoleNode, []string{"n"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clustertls.LoadCA(cert, key); !errors.Is(err, clustertls.ErrInvalid) {
		t.Fatalf("LoadCA of a node certificate = %v, want ErrInvalid", err)
	}
}

// TestServerNameBinding: a node is dialled as the node it registered as: a
// certificate of the CA for another node, served at the address, is
// refused, and so is a control plane's certificate served as a node's.
func TestServerNameBinding(t *testing.T) {
	dir := t.TempDir()
	if err := clustertls.InitDir(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := clustertls.IssueInto(dir, "node-b", clustertls.RoleNode, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	nodeB := serve(t, must(clustertls.ServerConfigFromDir(dir, "node-b", clustertls.RoleControlPlane))(t))
	cpAsNode := serve(t, must(clustertls.ServerConfigFromDir(dir, clustertls.ControlPlaneName, clustertls.RoleControlPlane))(t))
	for _, tt := range []struct {
		name, addr, want string
		ok               bool
	}{
		{"node-b dialled as node-b", nodeB, "node-b", true},
		{"node-b dialled as another node", nodeB, clustertls.NodeName, false},
		{"a control plane's certificate served as a node's", cpAsNode, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := must(clustertls.ClientConfigFromDir(dir, clustertls.ControlPlaneName, clustertls.RoleNode, tt.want))(t)
			body, err := get(tt.addr, cfg)
			switch {
			case tt.ok && (err != nil || body != "ok"):
				t.Fatalf("got %q, %v; want ok", body, err)
			case !tt.ok && err == nil:
				t.Fatalf("answered %q; want the connection refused", body)
			}
		})
	}
}
