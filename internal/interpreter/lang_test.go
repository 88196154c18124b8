package interpreter

import "testing"

func TestNormalizeLanguage(t *testing.T) {
	for in, want := range map[string]string{"": "python", "  Python ": "python", "js": "javascript", "TS": "typescript", "R": "r", "cobol": "cobol"} {
		if got := NormalizeLanguage(in); got != want {
			t.Errorf("NormalizeLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvCode(t *testing.T) {
	env := map[string]string{"B": "it's \"q\"\n", "A": "1"}
	sandbox := map[string]string{"B": "orig"}
	cases := []struct {
		lang, set, restore string
	}{
		{"python", "__import__('os').environ[\"A\"] = \"1\"\n__import__('os').environ[\"B\"] = \"it's \\\"q\\\"\\n\"\n",
			"__import__('os').environ.pop(\"A\", None)\n__import__('os').environ[\"B\"] = \"orig\"\n"},
		{"javascript", "process.env[\"A\"] = \"1\";\nprocess.env[\"B\"] = \"it's \\\"q\\\"\\n\";\n",
			"delete process.env[\"A\"];\nprocess.env[\"B\"] = \"orig\";\n"},
		{"r", "invisible(Sys.setenv(\"A\" = \"1\"))\ninvisible(Sys.setenv(\"B\" = \"it's \\\"q\\\"\\n\"))\n",
			"invisible(Sys.unsetenv(\"A\"))\ninvisible(Sys.setenv(\"B\" = \"orig\"))\n"},
		{"bash", "export A='1'\nexport B='it'\\''s \"q\"\n'\n", "unset A\nexport B='orig'\n"},
	}
	for _, c := range cases {
		t.Run(c.lang, func(t *testing.T) {
			l := languages[c.lang]
			if got := l.envCode(env); got != c.set {
				t.Errorf("set\n got %q\nwant %q", got, c.set)
			}
			if got := l.restoreCode(env, sandbox); got != c.restore {
				t.Errorf("restore\n got %q\nwant %q", got, c.restore)
			}
		})
	}
}

func TestWithSetup(t *testing.T) {
	cases := []struct{ name, setup, code, want string }{
		{"no setup", "", "x", "x"},
		{"plain", "a = 1\n", "print(a)", "a = 1\nprint(a)"},
		{"indented like the first non-empty line", "a = 1\nb = 2\n", "\n    if True:\n        pass", "    a = 1\n    b = 2\n\n    if True:\n        pass"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := withSetup(c.setup, c.code); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestCheckEnvNames(t *testing.T) {
	cases := []struct {
		env map[string]string
		ok  bool
	}{
		{map[string]string{"FOO_1": "x"}, true},
		{map[string]string{"1FOO": "x"}, false},
		{map[string]string{"A;rm -rf /": "x"}, false},
		{map[string]string{"A": "nul\x00"}, false},
	}
	for _, c := range cases {
		if err := checkEnvNames(c.env); (err == nil) != c.ok {
			t.Errorf("checkEnvNames(%q) = %v, want ok %v", c.env, err, c.ok)
		}
	}
}
