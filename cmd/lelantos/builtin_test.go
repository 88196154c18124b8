package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinDefinitionHash(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	envdA, interpA, interpB := write("envd", "envd v1"), write("interp-a", "interpreter v1"), write("interp-b", "interpreter v2")
	tpl := builtinTemplates[0]
	hash := func(b *builtins, t2 builtinTemplate) string {
		h, err := b.definition(t2)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := hash(&builtins{envd: envdA, interpreter: interpA}, tpl)
	other := tpl
	other.memoryMB++
	cases := []struct {
		name string
		got  string
		same bool
	}{
		{"same inputs", hash(&builtins{envd: envdA, interpreter: interpA}, tpl), true},
		{"another interpreter binary", hash(&builtins{envd: envdA, interpreter: interpB}, tpl), false},
		{"other sizes", hash(&builtins{envd: envdA, interpreter: interpA}, other), false},
	}
	for _, c := range cases {
		if (c.got == base) != c.same {
			t.Errorf("%s: hash equal %v, want %v", c.name, c.got == base, c.same)
		}
	}
}

func TestWriteBuiltinDefinition(t *testing.T) {
	dir := t.TempDir()
	if err := writeDefinition(builtinTemplates[0], dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Dockerfile", "kernels/python3/kernel.json", "kernels/bash/kernel.json", "ipython/startup/0002_data.py",
		"python/lelantos_charts.py", "local-ca/README"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the context lacks %s: %v", f, err)
		}
	}
	df, _ := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if !strings.HasPrefix(strings.TrimSpace(stripComments(string(df))), "FROM base") {
		t.Errorf("the Dockerfile does not start FROM base")
	}
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestBuiltinProgressLog(t *testing.T) {
	var buf bytes.Buffer
	p := &progressLog{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for _, chunk := range []string{"Step 1/2 : FROM base\nGet:1 http://deb", "ian/ pkg\n ---> layer ab", "c (1s)\n"} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	if !strings.Contains(out, "Step 1/2 : FROM base") || !strings.Contains(out, "---> layer abc (1s)") || strings.Contains(out, "Get:1") {
		t.Fatalf("progress log:\n%s", out)
	}
}
