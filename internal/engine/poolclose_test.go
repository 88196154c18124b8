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
	"lelantos.dev/lelantos/internal/runtime/conformance"
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
			if left := conformance.AwaitNoProcesses(node.DataDir, 10*time.Second); len(left) > 0 {
				t.Fatalf("closed after %s: processes no runtime lists are still running: %s", d, strings.Join(left, "; "))
			}
		})
	}
}
