package envd

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "lelantos.dev/lelantos/internal/gen/envd/filesystem"
)

// raceRounds is how many requests each race attack sends while its swapper runs.
var raceRounds = flag.Int("attack.rounds", 400, "requests each symlink race attack sends")

// minRefused is how many requests of a race attack must meet the symlink.
const minRefused = 20

// watchBatch is how many watchers the watch attack holds before it checks them
// (each holds an inotify instance, of which a user has few).
const watchBatch = 40

// outcome is what one attacking request got.
type outcome int

const (
	// allowed: the request reached the attacker's own entry.
	allowed outcome = iota
	// refused: the daemon refused it as a permission error.
	refused
	// leaked: the reply holds what lies in the vault.
	leaked
	// other: any other answer (e.g. the entry was missing for a moment).
	other
)

// classify maps a reply to an outcome: a leak when the reply shows the vault,
// a refusal for a permission error. Other answers are counted by kind.
func (a *arena) classify(leak bool, err error) outcome {
	switch {
	case leak:
		return leaked
	case err == nil:
		return allowed
	case refusedCode(err):
		return refused
	}
	a.others[connect.CodeOf(err).String()]++
	return other
}

// statusOutcome maps a /files status to an outcome.
func (a *arena) statusOutcome(status int) outcome {
	switch status {
	case 200:
		return allowed
	case 403:
		return refused
	}
	a.others[strconv.Itoa(status)]++
	return other
}

// raceCase is one operation attacked while a swapper flips a component of its
// path between the attacker's own entry and a symlink into the vault.
type raceCase struct {
	name string
	// mode and the two targets of the swapped link pub/x (see runSwapper); the
	// second one is always in the vault.
	mode    string
	targets func(a *arena) (string, string)
	// try sends request i as the attacker.
	try func(a *arena, i int) outcome
	// finish, when set, runs after the rounds and returns further wins.
	finish func(a *arena) int
}

// fileTargets swaps pub/x between a file of the attacker's and a symlink to the secret.
func fileTargets(a *arena) (string, string) {
	return a.ownContent, filepath.Join(a.vault, "secret")
}

// dirTargets points pub/x at the attacker's directory, then at the vault.
func dirTargets(a *arena) (string, string) { return a.p("dir"), a.vault }

// raceCases are the attacks on every file operation the daemon offers.
func raceCases() []raceCase {
	var watchers []string
	return []raceCase{
		{name: "download", mode: swapFile, targets: fileTargets, try: func(a *arena, _ int) outcome {
			status, body := a.download(a.p("x"))
			if strings.Contains(body, a.secret) {
				return leaked
			}
			return a.statusOutcome(status)
		}},
		{name: "upload overwrites", mode: swapFile, targets: fileTargets, try: func(a *arena, _ int) outcome {
			return a.statusOutcome(a.upload(a.p("x"), "overwritten by the attacker"))
		}},
		{name: "upload creates", mode: swapRetarget, targets: dirTargets, try: func(a *arena, i int) outcome {
			return a.statusOutcome(a.upload(a.p(fmt.Sprintf("x/planted-%d", i)), "planted"))
		}},
		{name: "stat", mode: swapRetarget, targets: dirTargets, try: func(a *arena, _ int) outcome {
			res, err := a.fs.Stat(context.Background(), as(&pb.StatRequest{Path: a.p("x/secret")}))
			return a.classify(err == nil && (res.Msg.GetEntry().GetOwner() == "root" || res.Msg.GetEntry().GetSize() == int64(len(a.secret))), err)
		}},
		{name: "list", mode: swapExchange, targets: func(a *arena) (string, string) { return "mine", a.vault }, try: func(a *arena, _ int) outcome {
			res, err := a.fs.ListDir(context.Background(), as(&pb.ListDirRequest{Path: a.p("x"), Depth: 2}))
			leak := false
			if err == nil {
				for _, e := range res.Msg.GetEntries() {
					leak = leak || e.GetName() == "only-in-vault"
				}
			}
			return a.classify(leak, err)
		}},
		{name: "makedir", mode: swapRetarget, targets: dirTargets, try: func(a *arena, i int) outcome {
			_, err := a.fs.MakeDir(context.Background(), as(&pb.MakeDirRequest{Path: a.p(fmt.Sprintf("x/made-%d", i))}))
			return a.classify(false, err)
		}},
		{name: "move out", mode: swapRetarget, targets: dirTargets, try: func(a *arena, i int) outcome {
			loot := a.p(fmt.Sprintf("loot-%d", i))
			_, err := a.fs.Move(context.Background(), as(&pb.MoveRequest{Source: a.p("x/secret"), Destination: loot}))
			var st syscall.Stat_t
			leak := syscall.Lstat(loot, &st) == nil && st.Uid == 0
			_ = os.Remove(loot)
			return a.classify(leak, err)
		}},
		{name: "move in", mode: swapRetarget, targets: dirTargets, try: func(a *arena, i int) outcome {
			planted := a.p(fmt.Sprintf("plant-%d", i))
			a.ownFile(planted, "planted")
			_, err := a.fs.Move(context.Background(), as(&pb.MoveRequest{Source: planted, Destination: a.p(fmt.Sprintf("x/planted-%d", i))}))
			_ = os.Remove(planted)
			return a.classify(false, err)
		}},
		{name: "remove", mode: swapRetarget, targets: dirTargets, try: func(a *arena, _ int) outcome {
			_, err := a.fs.Remove(context.Background(), as(&pb.RemoveRequest{Path: a.p("x/secret")}))
			return a.classify(false, err)
		}},
		{name: "watch", mode: swapRetarget, targets: dirTargets, try: func(a *arena, _ int) outcome {
			res, err := a.fs.CreateWatcher(context.Background(), as(&pb.CreateWatcherRequest{Path: a.p("x")}))
			if err == nil {
				watchers = append(watchers, res.Msg.GetWatcherId())
			}
			return a.classify(false, err)
		}, finish: func(a *arena) int {
			mustDo(a.t, os.WriteFile(filepath.Join(a.vault, "canary"), nil, 0o600))
			time.Sleep(200 * time.Millisecond)
			wins := 0
			for _, id := range watchers {
				res, err := a.fs.GetWatcherEvents(context.Background(), as(&pb.GetWatcherEventsRequest{WatcherId: id}))
				if err == nil && slices.ContainsFunc(res.Msg.GetEvents(), func(e *pb.FilesystemEvent) bool { return e.GetName() == "canary" }) {
					wins++
				}
				_, _ = a.fs.RemoveWatcher(context.Background(), as(&pb.RemoveWatcherRequest{WatcherId: id}))
			}
			watchers = nil
			a.repairVault()
			return wins
		}},
	}
}

// TestSymlinkRaces sends each operation many times as an unprivileged user
// while a process of that user keeps swapping a component of the path for a
// symlink into a root-only directory. Every request must either reach the
// user's own entry or be refused; none may read, change, move, remove or watch
// anything in the root-only directory.
func TestSymlinkRaces(t *testing.T) {
	for _, tc := range raceCases() {
		t.Run(tc.name, func(t *testing.T) {
			a := newArena(t)
			first, second := tc.targets(a)
			running := startSwapper(t, a.uid, a.gid, tc.mode, a.p("x"), first, second)
			var counts [4]int
			wins := 0
			// A loaded machine may starve the swapper: go on until enough requests met the symlink.
			i := 0
			for ; i < *raceRounds || counts[refused] < minRefused && i < 10*(*raceRounds); i++ {
				got := tc.try(a, i)
				counts[got]++
				if change := a.vaultChange(); change != "" || got == leaked {
					wins++
					t.Logf("round %d: %s", i, change)
					a.repairVault()
				}
				a.repairPub()
				if tc.finish != nil && i%watchBatch == watchBatch-1 {
					wins += tc.finish(a)
				}
			}
			running()
			if tc.finish != nil {
				wins += tc.finish(a)
			}
			t.Logf("%d rounds: %d allowed, %d refused, %d other %v, %d got through", i, counts[allowed], counts[refused], counts[other], a.others, wins)
			if wins > 0 {
				t.Fatalf("the attacker got through %d times in %d rounds", wins, i)
			}
			if counts[refused] < minRefused {
				t.Fatalf("only %d requests met the symlink into the vault: the attack did not run", counts[refused])
			}
		})
	}
}
