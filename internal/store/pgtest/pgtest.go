// Package pgtest runs a throwaway PostgreSQL server for tests: the host's
// server binaries (Debian's postgresql package, which scripts/install-deps.sh
// installs), a cluster made by initdb in a temporary directory, run as the
// postgres user when the tests run as root (the server refuses root), and
// reached on a unix socket only. One server serves a whole test binary: it
// starts on the first NewDatabase and stops when Main's tests are done; if the
// test binary dies first, the kernel stops it too. Every NewDatabase is a
// fresh database on it, dropped at the end of its test. The server of
// NewDatabase does not wait for the disk (fsync off), which keeps tests
// fast; NewDurableDatabase's, a second one started when first needed, waits
// as a production server does (for benchmarks).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoServer: the host has no PostgreSQL server binaries.
var ErrNoServer = errors.New("no PostgreSQL server binaries (initdb, postgres) on this host")

// servers are the test binary's servers, fast and durable. They are the one
// package-level variable here, and they have to be: "one server per test
// binary" is state of the process, made on first use by whichever test needs
// it and stopped by Main.
var servers [2]struct {
	once sync.Once
	srv  *Server
	err  error
}

// Main runs the tests of m and then stops the servers the tests started;
// call it from the package's TestMain.
func Main(m *testing.M) {
	code := m.Run()
	for i := range servers {
		if s := servers[i].srv; s != nil {
			if err := s.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "pgtest:", err)
			}
		}
	}
	os.Exit(code)
}

// NewDatabase returns the URL of a new, empty database on the test binary's
// server, starting the server on first use, and drops the database when the
// test ends. Nothing waits for the disk there. A host without the server
// binaries skips the test, unless $LELANTOS_TEST_REQUIRE_POSTGRES is set
// (make test sets it, having installed them): then it fails.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, false)
}

// NewDurableDatabase is NewDatabase on a server whose commits wait for the
// disk, as a production server's do (for benchmarks).
func NewDurableDatabase(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, true)
}

func newDatabase(tb testing.TB, durable bool) string {
	tb.Helper()
	shared := &servers[0]
	if durable {
		shared = &servers[1]
	}
	shared.once.Do(func() { shared.srv, shared.err = Start(context.Background(), durable) })
	if errors.Is(shared.err, ErrNoServer) && os.Getenv("LELANTOS_TEST_REQUIRE_POSTGRES") == "" {
		tb.Skipf("PostgreSQL: %v (scripts/install-deps.sh installs Debian's postgresql)", shared.err)
	}
	if shared.err != nil {
		tb.Fatalf("start PostgreSQL: %v", shared.err)
	}
	name, url, err := shared.srv.CreateDatabase(context.Background())
	if err != nil {
		tb.Fatalf("create a PostgreSQL database: %v", err)
	}
	tb.Cleanup(func() {
		if err := shared.srv.DropDatabase(context.Background(), name); err != nil {
			tb.Errorf("drop PostgreSQL database %s: %v", name, err)
		}
	})
	return url
}

// Server is a running throwaway PostgreSQL server.
type Server struct {
	dir  string // the cluster's directory, which also holds the socket
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	mu   sync.Mutex    // serializes admin, which one connection serves
	// admin is a connection to the "postgres" database.
	admin *pgx.Conn
	n     atomic.Int64
}

// Start makes a cluster in a new temporary directory and starts its server;
// unless durable, the server never waits for the disk (fsync off).
func Start(ctx context.Context, durable bool) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoServer, err)
		}
	}
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("make the cluster directory: %w", err)
	}
	s, err := start(ctx, bin, dir, cred, durable)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// start makes the cluster in dir with bin's initdb and runs its server as
// cred (nil: the current user), on a unix socket in dir only.
func start(ctx context.Context, bin, dir string, cred *syscall.Credential, durable bool) (*Server, error) {
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("give the cluster directory to the postgres user: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, tail(out))
	}
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	defer logf.Close()
	args := []string{"-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "max_connections=300",
		"-c", "shared_buffers=64MB", "-c", "log_min_messages=warning", "-c", "timezone=UTC"}
	if !durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown: the server goes with a test
	// binary that dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := s.connect(ctx); err != nil {
		_ = s.Stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w: %s", err, tail(log))
	}
	return s, nil
}

// connect waits for the server to accept connections and opens admin.
func (s *Server) connect(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := pgx.Connect(ctx, s.url("postgres"))
		if err == nil {
			s.admin = c
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited at start: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres does not accept connections: %w", err)
		}
	}
}

// url is the URL of database name on the server.
func (s *Server) url(name string) string {
	return "postgres://postgres@/" + name + "?host=" + s.dir + "&sslmode=disable"
}

// CreateDatabase makes a new empty database and returns its name and URL.
func (s *Server) CreateDatabase(ctx context.Context) (name, url string, err error) {
	name = fmt.Sprintf("test_%d", s.n.Add(1))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, s.url(name), nil
}

// DropDatabase removes database name, closing its connections.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
	return err
}

// Stop shuts the server down (fast shutdown, then a kill after 10 s) and
// removes its directory.
func (s *Server) Stop() error {
	if s.admin != nil {
		_ = s.admin.Close(context.Background())
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove the cluster directory: %w", err)
	}
	return nil
}

// tail is the end of a command's output, for error messages.
func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
