package cli

import (
	"strings"
	"testing"
)

func testErrors(t *testing.T, s *server, a string) {
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		// stderr is the whole of stderr, or its start when it ends in "...".
		stderr string
	}{
		{"unknown id: info", nil, []string{"sandbox", "info", "nosuch1"}, 1, `lelantos: sandbox info: sandbox "nosuch1" not found` + "\n"},
		{"unknown id: exec", nil, []string{"sb", "exec", "nosuch1", "true"}, 1, `lelantos: sandbox exec: sandbox "nosuch1" not found` + "\n"},
		{"shell without a terminal", nil, []string{"sb", "shell", "nosuch1"}, 1, "lelantos: sandbox shell: stdin is not a terminal..."},
		{"unknown id: cp", nil, []string{"sb", "cp", "nosuch1:/x", "-"}, 1, `lelantos: sandbox cp: sandbox "nosuch1" not found` + "\n"},
		{"unknown id: logs", nil, []string{"sb", "logs", "nosuch1"}, 1, `lelantos: sandbox logs: sandbox "nosuch1" not found` + "\n"},
		{"unknown id: metrics", nil, []string{"sb", "metrics", "nosuch1"}, 1, `lelantos: sandbox metrics: sandbox "nosuch1" not found` + "\n"},
		{"unknown id: pause", nil, []string{"sb", "pause", "nosuch1"}, 1, `lelantos: sandbox pause: sandbox "nosuch1" not found` + "\n"},
		{"unknown id: resume", nil, []string{"sb", "resume", "nosuch1"}, 1, `lelantos: sandbox resume: sandbox "nosuch1" not found` + "\n"},
		{"resume a running one", nil, []string{"sb", "resume", a}, 1, "lelantos: sandbox resume: ..."},
		{"bad timeout", nil, []string{"sandbox", "create", "--timeout", "x"}, 2, `lelantos: sandbox create: --timeout "x": not a number of seconds` + "\n"},
		{"negative timeout", nil, []string{"sandbox", "create", "--timeout=-5"}, 2, `lelantos: sandbox create: --timeout "-5": not a number of seconds` + "\n"},
		{"unknown flag", nil, []string{"sandbox", "create", "--gpu", "1"}, 2, "lelantos: sandbox create: unknown flag --gpu\n"},
		{"flag without value", nil, []string{"sandbox", "create", "--template"}, 2, "lelantos: sandbox create: --template needs a value\n"},
		{"bad metadata", nil, []string{"sandbox", "create", "--metadata", "novalue"}, 2, `lelantos: sandbox create: --metadata "novalue": want KEY=VALUE` + "\n"},
		{"unknown template", nil, []string{"sandbox", "create", "--template", "nosuchtemplate"}, 1, "lelantos: sandbox create: ..."},
		{"bad state", nil, []string{"sandbox", "ls", "--state", "sleeping"}, 2, `lelantos: sandbox ls: --state "sleeping": want running, paused or running,paused` + "\n"},
		{"bad since", nil, []string{"sandbox", "logs", a, "--since", "soon"}, 2, `lelantos: sandbox logs: --since "soon": not a positive duration (e.g. 90s, 10m, 2h)` + "\n"},
		{"bad json flag", nil, []string{"sandbox", "ls", "--json=maybe"}, 2, `lelantos: sandbox ls: --json "maybe": want true or false` + "\n"},
		{"no id", nil, []string{"sandbox", "kill"}, 2, "lelantos: sandbox kill: give the ID of a sandbox (lelantos sandbox ls lists them)\n"},
		{"two ids", nil, []string{"sandbox", "info", a, "b"}, 2, `lelantos: sandbox info: unexpected argument "b": give one sandbox ID` + "\n"},
		{"no command", nil, []string{"sandbox", "exec", a}, 2, "lelantos: sandbox exec: give a command after the sandbox ID..."},
		{"unknown subcommand", nil, []string{"sandbox", "attach"}, 2, `lelantos: sandbox: unknown subcommand "attach" (lelantos sandbox -h lists them)` + "\n"},
		{"no subcommand", nil, []string{"sb"}, 2, "lelantos: sandbox: a subcommand is required (lelantos sandbox -h lists them)\n"},
		{"missing API key", []string{"E2B_API_KEY="}, []string{"sandbox", "ls"}, 1,
			"lelantos: sandbox ls: no API key: pass --api-key or set E2B_API_KEY (. .lelantos/client.env sets it)\n"},
		{"wrong API key", []string{"E2B_API_KEY=e2b_0000"}, []string{"sandbox", "ls"}, 1, "lelantos: sandbox ls: ..."},
		{"missing API URL", []string{"E2B_API_URL="}, []string{"sandbox", "info", a}, 1,
			"lelantos: sandbox info: no API URL: pass --api-url or set E2B_API_URL (. .lelantos/client.env sets it)\n"},
		{"bad sandbox URL", nil, []string{"sandbox", "exec", "--sandbox-url", "localhost:1", a, "true"}, 1,
			`lelantos: sandbox exec: sandbox URL "localhost:1": must start with http:// or https://` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.run(t, "", tt.env, tt.args...)
			prefix, isPrefix := strings.CutSuffix(tt.stderr, "...")
			match := r.stderr == tt.stderr
			if isPrefix {
				match = strings.HasPrefix(r.stderr, prefix) && strings.Count(r.stderr, "\n") == 1
			}
			if r.code != tt.code || !match || r.stdout != "" {
				t.Errorf("lelantos %s: exit %d, stderr %q, stdout %q; want exit %d, stderr %q",
					strings.Join(tt.args, " "), r.code, r.stderr, r.stdout, tt.code, tt.stderr)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		out := s.ok(t, "sandbox", "exec", "-h")
		if !strings.HasPrefix(out, "usage: lelantos sandbox exec ID") || !strings.Contains(out, "-cwd") {
			t.Errorf("exec -h: %q", out)
		}
		if out := s.ok(t, "sandbox", "--help"); strings.Count(out, "lelantos sandbox ") < 11 {
			t.Errorf("sandbox --help: %q", out)
		}
	})
}
