package envd

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/gen/envd/filesystem/filesystemconnect"
)

// attackUser is the unprivileged user the attacks run as.
const attackUser = "nobody"

// arena is a directory tree for attacks on the daemon, served by a fresh daemon:
//
//	base/        root 0755
//	  vault/     root 0700: the attacker must never read, change or list it
//	    secret        root 0600
//	    only-in-vault root 0600
//	  pub/       the attacker's own 0755
//	    own           the attacker's 0644
//	    dir/          the attacker's 0755, holding a decoy named "secret"
type arena struct {
	t                 *testing.T
	base, vault, pub  string
	secret            string
	uid, gid          int
	url               string
	fs                filesystemconnect.FilesystemClient
	vaultNames        []string
	decoy, ownContent string
	// others counts the answers that were neither a success nor a refusal.
	others map[string]int
}

// newArena builds the tree and serves a daemon for it; it needs root (to make
// root-only files and act as another user).
func newArena(t *testing.T) *arena {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the attacks need root-only files and a second user")
	}
	pw, err := user.Lookup(attackUser)
	if err != nil {
		t.Skipf("the host has no %q user", attackUser)
	}
	uid, _ := strconv.Atoi(pw.Uid)
	gid, _ := strconv.Atoi(pw.Gid)
	base := t.TempDir()
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		mustDo(t, os.Chmod(d, 0o755))
	}
	_, srv := newServer(t)
	a := &arena{
		t: t, base: base, vault: filepath.Join(base, "vault"), pub: filepath.Join(base, "pub"),
		secret: "VAULT-SECRET-" + strconv.FormatInt(int64(os.Getpid()), 36) + "-do-not-leak",
		uid:    uid, gid: gid, url: srv.URL,
		fs:         filesystemconnect.NewFilesystemClient(srv.Client(), srv.URL, connect.WithProtoJSON()),
		vaultNames: []string{"only-in-vault", "secret"},
		decoy:      "decoy", ownContent: "the attacker's own file", others: map[string]int{},
	}
	mustDo(t, os.Mkdir(a.vault, 0o700))
	a.repairVault()
	mustDo(t, os.Mkdir(a.pub, 0o755))
	mustDo(t, os.Chown(a.pub, uid, gid))
	a.repairPub()
	return a
}

// p returns the path of rel under pub.
func (a *arena) p(rel string) string { return filepath.Join(a.pub, rel) }

// repairVault puts the vault back as it was: the secret, its only other file,
// root's, nothing else.
func (a *arena) repairVault() {
	a.t.Helper()
	ents, err := os.ReadDir(a.vault)
	mustDo(a.t, err)
	for _, e := range ents {
		if !slices.Contains(a.vaultNames, e.Name()) {
			mustDo(a.t, os.RemoveAll(filepath.Join(a.vault, e.Name())))
		}
	}
	for _, name := range a.vaultNames {
		p := filepath.Join(a.vault, name)
		_ = os.RemoveAll(p)
		mustDo(a.t, os.WriteFile(p, []byte(a.secret), 0o600))
	}
	mustDo(a.t, os.Chmod(a.vault, 0o700))
	mustDo(a.t, os.Chown(a.vault, 0, 0))
}

// vaultChange describes how the vault differs from what repairVault made ("" when
// it does not).
func (a *arena) vaultChange() string {
	ents, err := os.ReadDir(a.vault)
	if err != nil {
		return fmt.Sprintf("vault unreadable: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, a.vaultNames) {
		return fmt.Sprintf("vault holds %v", names)
	}
	for _, name := range a.vaultNames {
		p := filepath.Join(a.vault, name)
		var st syscall.Stat_t
		b, err := os.ReadFile(p)
		if err != nil || string(b) != a.secret || syscall.Lstat(p, &st) != nil || st.Uid != 0 || st.Mode&0o777 != 0o600 {
			return fmt.Sprintf("vault/%s changed: %q, uid %d, mode %o (%v)", name, b, st.Uid, st.Mode&0o777, err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(a.vault, &st); err != nil || st.Uid != 0 || st.Mode&0o777 != 0o700 {
		return fmt.Sprintf("vault itself changed: uid %d mode %o (%v)", st.Uid, st.Mode&0o777, err)
	}
	return ""
}

// repairPub recreates the attacker's own file and directory with its decoy.
func (a *arena) repairPub() {
	a.t.Helper()
	own := a.p("own")
	if b, err := os.ReadFile(own); err != nil || string(b) != a.ownContent {
		_ = os.RemoveAll(own)
		a.ownFile(own, a.ownContent)
	}
	dir := a.p("dir")
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		_ = os.RemoveAll(dir)
		mustDo(a.t, os.Mkdir(dir, 0o755))
		mustDo(a.t, os.Chown(dir, a.uid, a.gid))
	}
	decoy := filepath.Join(dir, "secret")
	if b, err := os.ReadFile(decoy); err != nil || string(b) != a.decoy {
		_ = os.RemoveAll(decoy)
		a.ownFile(decoy, a.decoy)
	}
}

// ownFile writes a file of the attacker's.
func (a *arena) ownFile(path, content string) {
	a.t.Helper()
	mustDo(a.t, os.WriteFile(path, []byte(content), 0o644))
	mustDo(a.t, os.Chown(path, a.uid, a.gid))
}

// symlink makes rel under pub a symlink to target, the attacker's.
func (a *arena) symlink(rel, target string) {
	a.t.Helper()
	p := a.p(rel)
	_ = os.Remove(p)
	mustDo(a.t, os.Symlink(target, p))
	mustDo(a.t, os.Lchown(p, a.uid, a.gid))
}

// download fetches path as the attacker and returns the status and body.
func (a *arena) download(path string) (int, string) {
	res, err := http.Get(a.url + "/files?" + url.Values{"path": {path}, "username": {attackUser}}.Encode())
	if err != nil {
		a.t.Fatalf("download %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// upload writes content to path as the attacker and returns the status.
func (a *arena) upload(path, content string) int {
	q := url.Values{"path": {path}, "username": {attackUser}}.Encode()
	res, err := http.Post(a.url+"/files?"+q, "application/octet-stream", strings.NewReader(content))
	if err != nil {
		a.t.Fatalf("upload %s: %v", path, err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// as returns a filesystem request sent as the attacker.
func as[T any](msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(attackUser+":")))
	return req
}

// refusedCode reports whether err is the wire's refusal of a permission.
func refusedCode(err error) bool {
	return connect.CodeOf(err) == connect.CodePermissionDenied
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
