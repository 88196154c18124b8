package template_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// hostCalls are the calls that open or stat a host path, following its links.
var hostCalls = map[string]bool{
	"os.Open": true, "os.ReadFile": true, "os.Stat": true, "os.Lstat": true, "os.OpenFile": true,
	"filepath.Walk": true, "filepath.WalkDir": true,
}

// allowedHostCalls are the ones on paths the builder alone makes and no code runs
// in (records, work files, the host's own files), by file and first argument.
// Anything in a tree of untrusted content goes through internal/saferoot.
var allowedHostCalls = map[string][]string{
	"disk.go":     {"image"},
	"dns.go":      {`"/etc/resolv.conf"`},
	"files.go":    {"p"},
	"prune.go":    {"filepath.Join(dir, layerFile)"},
	"gc.go":       {"filepath.Join(dir, layerFile)", `"/proc/self/mountinfo"`},
	"layers.go":   {"filepath.Join(dir, layerFile)", `filepath.Join(dir, "rootfs")`, "tmp", "p"},
	"records.go":  {"filepath.Join(b.buildDir(buildID), buildLogs)"},
	"buildlog.go": {"filepath.Join(r.dir, buildLogs)"},
	"execute.go":  {"cfg.ConsolePath"},
	// The roots of an import, named by the server: the tree itself (not a
	// path inside it) and a destination that must not exist yet.
	"import.go": {"req.Tree", "dst"},
}

// TestNoHostCallsOnTrees: the package's sources open no path of an untrusted tree
// with the host's own calls.
func TestNoHostCallsOnTrees(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || !hostCalls[pkg.Name+"."+sel.Sel.Name] || len(call.Args) == 0 {
				return true
			}
			var arg bytes.Buffer
			_ = printer.Fprint(&arg, fset, call.Args[0])
			for _, a := range allowedHostCalls[p] {
				if a == arg.String() {
					return true
				}
			}
			t.Errorf("%s: %s.%s(%s): a host call on a path that may be in an untrusted tree; use internal/saferoot",
				fset.Position(call.Pos()), pkg.Name, sel.Sel.Name, arg.String())
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
