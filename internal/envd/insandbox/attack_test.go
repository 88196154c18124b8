package insandbox

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
	"lelantos.dev/lelantos/internal/runtime/gvisor"
	"lelantos.dev/lelantos/internal/runtime/runc"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// Each attack sends rounds requests while the swappers run, and more, up to
// maxRounds, until minRefused of them met a symlink to root's files.
const (
	rounds     = 150
	minRefused = 20
	maxRounds  = 3000
	// watchBatch is how many watchers the watch attack holds at once.
	watchBatch = 25
)

// secret is what the root-only files hold.
const secret = "VAULT-SECRET-never-leaves-the-vault"

// swapper is a Python program the attacker runs in the sandbox: it replaces
// argv[1] again and again, atomically (a rename over it), by a regular file
// holding argv[3] ("file" mode) or a symlink to argv[3] ("link" mode), then by
// a symlink to argv[4].
const swapper = `import os, sys
link, mode, a, b = sys.argv[1:5]
tmp = link + ".swap"
i = 0
while True:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    if i % 2:
        os.symlink(b, tmp)
    elif mode == "file":
        with open(tmp, "w") as f:
            f.write(a)
    else:
        os.symlink(a, tmp)
    os.rename(tmp, link)
    i += 1
`

// setup is run as root: the vault, root's own 0700 directory, and checksums of
// it and of /etc/shadow to compare with at the end.
const setup = `set -e
mkdir -m 700 /root/vault
for f in secret only-in-vault; do printf %s '` + secret + `' > /root/vault/$f; chmod 600 /root/vault/$f; done
sha256sum /etc/shadow /root/vault/secret /root/vault/only-in-vault > /root/sums`

// attack is one operation sent as the attacker, many times, while the swappers run.
type attack struct {
	name string
	// try sends request i and counts its reply.
	try func(u *daemon, i int, c *tally)
}

// attacks uses three swapped links of the attacker's in ~/pub: f (its own file,
// then a symlink to the vault's secret), s (the same with /etc/shadow) and d (a
// symlink to its own directory ~/pub/dir, then to the vault).
func attacks(pub string) []attack {
	p := func(rel string) string { return pub + "/" + rel }
	bg := context.Background()
	decoy := func(u *daemon) { u.upload(p("dir/secret"), "decoy") }
	return []attack{
		{"download", func(u *daemon, _ int, c *tally) {
			code, body := u.download(p("f"))
			c.status(code, strings.Contains(body, secret))
		}},
		{"download shadow", func(u *daemon, _ int, c *tally) {
			code, body := u.download(p("s"))
			c.status(code, strings.Contains(body, "root:"))
		}},
		{"upload overwrites", func(u *daemon, _ int, c *tally) { c.status(u.upload(p("f"), "overwritten"), false) }},
		{"upload overwrites shadow", func(u *daemon, _ int, c *tally) { c.status(u.upload(p("s"), "root::0:0:99999:7:::\n"), false) }},
		{"upload creates", func(u *daemon, i int, c *tally) {
			c.status(u.upload(p(fmt.Sprintf("d/planted-%d", i)), "planted"), false)
		}},
		{"stat", func(u *daemon, _ int, c *tally) {
			res, err := u.fs.Stat(bg, rpcRequest(&pb.StatRequest{Path: p("d/secret")}))
			c.rpc(err, err == nil && res.Msg.GetEntry().GetOwner() == "root")
		}},
		{"list", func(u *daemon, _ int, c *tally) {
			res, err := u.fs.ListDir(bg, rpcRequest(&pb.ListDirRequest{Path: p("d"), Depth: 2}))
			c.rpc(err, err == nil && slices.ContainsFunc(res.Msg.GetEntries(), func(e *pb.EntryInfo) bool { return e.GetName() == "only-in-vault" }))
		}},
		{"makedir", func(u *daemon, i int, c *tally) {
			_, err := u.fs.MakeDir(bg, rpcRequest(&pb.MakeDirRequest{Path: p(fmt.Sprintf("d/made-%d", i))}))
			c.rpc(err, false)
		}},
		{"move out", func(u *daemon, i int, c *tally) {
			decoy(u)
			res, err := u.fs.Move(bg, rpcRequest(&pb.MoveRequest{Source: p("d/secret"), Destination: p(fmt.Sprintf("loot-%d", i))}))
			c.rpc(err, err == nil && res.Msg.GetEntry().GetOwner() == "root")
		}},
		{"move in", func(u *daemon, i int, c *tally) {
			u.upload(p("plant"), "planted")
			_, err := u.fs.Move(bg, rpcRequest(&pb.MoveRequest{Source: p("plant"), Destination: p(fmt.Sprintf("d/planted-%d", i))}))
			c.rpc(err, false)
		}},
		{"remove", func(u *daemon, _ int, c *tally) {
			decoy(u)
			_, err := u.fs.Remove(bg, rpcRequest(&pb.RemoveRequest{Path: p("d/secret")}))
			c.rpc(err, false)
		}},
	}
}

// TestSymlinkAttacks runs, in a sandbox of each runtime class, processes of an
// unprivileged user that keep swapping its own entries for symlinks to root's
// files, while the test sends every file operation as that user through the
// daemon. Nothing of root's may be read, changed, moved, removed or watched.
func TestSymlinkAttacks(t *testing.T) {
	node := enginetest.NewNode(t, "10.232.40.0/24")
	e := node.Engine(t)
	for _, class := range []string{gvisor.Class, runc.Class} {
		t.Run(class, func(t *testing.T) {
			spec := engine.Spec{
				ID: "envdattack" + class, TemplateID: "base", RootfsPath: enginetest.BaseRootfs(t), RuntimeClass: class,
				CPUCount: 2, MemoryMB: 512, DiskSizeMB: 512, AccessToken: "tok-attack-" + class, DefaultUser: "user",
			}
			st, err := e.Create(context.Background(), spec)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			t.Cleanup(func() { _ = e.Kill(context.Background(), spec.ID) })
			root, user := newDaemon(t, st, "root"), newDaemon(t, st, "user")
			root.sh(setup)
			const pub = "/home/user/pub"
			user.sh("mkdir -p " + pub + "/dir && printf decoy > " + pub + "/dir/secret")
			if code := user.upload("/home/user/swap.py", swapper); code != 200 {
				t.Fatalf("upload the swapper: %d", code)
			}
			user.sh(`cd ~/pub && for a in "f file own /root/vault/secret" "s file own /etc/shadow" "d link /home/user/pub/dir /root/vault"; do
				set -- $a; nohup python3 ~/swap.py ~/pub/$1 $2 $3 $4 >/tmp/swap-$1.log 2>&1 &
			done
			for i in $(seq 200); do [ -e f ] || [ -L f ] && [ -L d ] && { [ -e s ] || [ -L s ]; } && exit 0; sleep 0.05; done; exit 1`)
			for _, a := range attacks(pub) {
				var c tally
				// A loaded machine may starve the swappers: go on until enough requests met a symlink.
				for i := 0; i < rounds || c.refused < minRefused && i < maxRounds; i++ {
					a.try(user, i, &c)
				}
				t.Logf("%s: %s", a.name, c)
				if c.leaked > 0 {
					t.Errorf("%s: %d replies showed root's files (%s)", a.name, c.leaked, c)
				}
				if c.refused < minRefused {
					t.Errorf("%s: too few requests met a symlink to root's files (%s): the attack did not run", a.name, c)
				}
			}
			if n := watchAttack(t, root, user, pub); n > 0 {
				t.Errorf("watch: %d watchers saw inside the vault", n)
			}
			if out := user.sh("pgrep -c -u user -f '[s]wap[.]py' || true"); out != "3" {
				t.Errorf("%s swappers still run, want 3: %s", out, user.sh("cat /tmp/swap-*.log"))
			}
			user.sh("pkill -u user -f '[s]wap[.]py'; while pgrep -u user -f '[s]wap[.]py' >/dev/null; do sleep 0.05; done")
			vaultIntact(t, root, pub)
			plainRefusals(t, root, user, pub)
		})
	}
}

// watchAttack creates watchers of the swapped directory link as the attacker,
// in batches (each holds an inotify instance); after each batch root creates a
// file in the vault. It returns how many watchers reported one.
func watchAttack(t *testing.T, root, user *daemon, pub string) int {
	bg := context.Background()
	var c tally
	saw := 0
	for batch := 0; batch < rounds/watchBatch || c.refused < minRefused && batch < maxRounds/watchBatch; batch++ {
		var ids []string
		for range watchBatch {
			res, err := user.fs.CreateWatcher(bg, rpcRequest(&pb.CreateWatcherRequest{Path: pub + "/d"}))
			c.rpc(err, false)
			if err == nil {
				ids = append(ids, res.Msg.GetWatcherId())
			}
		}
		root.sh(fmt.Sprintf("touch /root/vault/canary-%d", batch))
		time.Sleep(300 * time.Millisecond)
		for _, id := range ids {
			res, err := user.fs.GetWatcherEvents(bg, rpcRequest(&pb.GetWatcherEventsRequest{WatcherId: id}))
			if err == nil && slices.ContainsFunc(res.Msg.GetEvents(), func(e *pb.FilesystemEvent) bool { return strings.HasPrefix(e.GetName(), "canary") }) {
				saw++
			}
			_, _ = user.fs.RemoveWatcher(bg, rpcRequest(&pb.RemoveWatcherRequest{WatcherId: id}))
		}
	}
	root.sh("rm -f /root/vault/canary-*")
	t.Logf("watch: %s", c)
	if c.refused < minRefused {
		t.Errorf("watch: too few requests met the symlink into the vault (%s)", c)
	}
	return saw
}

// vaultIntact checks, as root, that the vault and /etc/shadow are as setup
// left them and that nothing of root's reached the attacker's directory.
func vaultIntact(t *testing.T, root *daemon, pub string) {
	t.Helper()
	if out := root.sh("sha256sum -c --quiet /root/sums 2>&1 || true"); out != "" {
		t.Errorf("root's files changed: %s", out)
	}
	if out := root.sh("ls -A /root/vault | tr '\\n' ' '"); out != "only-in-vault secret" {
		t.Errorf("the vault holds %q", out)
	}
	if out := root.sh("find " + pub + " -user root"); out != "" {
		t.Errorf("root's files in the attacker's directory: %s", out)
	}
}

// plainRefusals checks refusals without a race, and that root still acts as
// root and the user as the user (ownership, metadata, its processes).
func plainRefusals(t *testing.T, root, user *daemon, pub string) {
	t.Helper()
	bg := context.Background()
	user.sh("ln -sfn /etc/shadow " + pub + "/to-shadow && ln -sfn /root/vault " + pub + "/to-vault")
	if code, body := user.download("/etc/shadow"); code != 403 {
		t.Errorf("user reads /etc/shadow: %d %q", code, body)
	}
	if code, body := user.download(pub + "/to-shadow"); code != 403 {
		t.Errorf("user reads /etc/shadow through a symlink: %d %q", code, body)
	}
	if code := user.upload(pub+"/to-shadow", "x"); code != 403 {
		t.Errorf("user writes /etc/shadow through a symlink: %d", code)
	}
	if _, err := user.fs.ListDir(bg, rpcRequest(&pb.ListDirRequest{Path: pub + "/to-vault"})); err == nil {
		t.Error("user lists the vault through a symlink")
	}
	if code, body := root.download("/root/vault/secret"); code != 200 || body != secret {
		t.Errorf("root reads its own file: %d %q", code, body)
	}
	if code := user.upload(pub+"/mine/new.txt", "mine"); code != 200 {
		t.Errorf("user writes in its own directory: %d", code)
	}
	if out := root.sh("stat -c %U:%G " + pub + "/mine " + pub + "/mine/new.txt | sort -u"); out != "user:user" {
		t.Errorf("what the user wrote is owned by %q", out)
	}
	if code, body := user.uploadWith(pub+"/mine/meta.txt", "m", map[string]string{"X-Metadata-Purpose": "test"}); code != 200 || !strings.Contains(body, `"metadata":{"purpose":"test"}`) {
		t.Errorf("user writes a file with metadata: %d %s", code, body)
	}
	// Acting as users leaves the daemon's later children as inspectable as ever.
	if out := user.sh("stat -c %U /proc/$$/environ"); out != "user" {
		t.Errorf("a process of the user's has /proc files of %q", out)
	}
	vaultIntact(t, root, pub)
}
