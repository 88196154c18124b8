package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// TestCloseDuringPoolBoots: an engine closed while its pools are booting
// leaves every sandbox it started either recorded (a restarted node adopts
// it) or gone. A boot still under way when Close returns would go on to start
// a sandbox that no record names, which nothing would ever remove.
func TestCloseDuringPoolBoots(t *testing.T) {
	delays := []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond,
		600 * time.Millisecond, time.Second}
	for i, d := range delays {
		t.Run(d.String(), func(t *testing.T) {
			node := enginetest.NewNode(t, fmt.Sprintf("10.232.%d.0/24", 182+i))
			e := node.EngineWith(t, func(o *engine.Options) {
				o.Warm = []engine.WarmPool{{Spec: newSpec(t, ""), Size: 3}}
			})
			time.Sleep(d)
			e.Close()
			ctx := context.Background()
			for class, rt := range node.Runtimes {
				infos, err := rt.List(ctx)
				if err != nil {
					t.Fatalf("list %s: %v", class, err)
				}
				for _, info := range infos {
					if _, err := os.Stat(filepath.Join(node.DataDir, "sandboxes", info.ID)); err != nil {
						t.Errorf("closed after %s: %s sandbox %s runs without a record: %v", d, class, info.ID, err)
					}
					_ = rt.Kill(ctx, info.ID)
				}
			}
			// What the runtimes listed is killed: nothing of the node may run now.
			deadline := time.Now().Add(10 * time.Second)
			for {
				left := processesUnder(node.DataDir)
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("closed after %s: processes no runtime lists are still running: %s", d, strings.Join(left, "; "))
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// processesUnder describes the host's processes whose command line names dir.
func processesUnder(dir string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if args := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(args, dir) {
			found = append(found, strings.TrimPrefix(filepath.Dir(p), "/proc/")+" "+args[:min(len(args), 160)])
		}
	}
	return found
}
