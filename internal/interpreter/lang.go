package interpreter

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// language says how the server drives one language's kernel.
type language struct {
	// kernel is the kernelspec's name.
	kernel string
	// set and unset are statements setting and removing an environment variable.
	set   func(k, v string) string
	unset func(k string) string
	// warm is a cheap expression with a result, run once when the kernel
	// starts (Kernel.warmUp).
	warm string
	// envHook, when set, is code that makes the kernel apply the variables an
	// execute_request's metadata holds under envMetadataKey to its environment
	// before the request's code runs, even code that fails to compile. It lets
	// a context's first execution set the sandbox's variables without a run of
	// its own.
	envHook string
	// drain, when set, is the kernel's KernelOptions.Drain.
	drain func(token string) string
}

// envMetadataKey is the key of an execute_request's metadata whose variables a
// kernel with language.envHook applies before the code runs.
const envMetadataKey = "lelantos_env"

// pythonEnvHook registers an IPython pre_execute callback (it fires before a
// cell is compiled, silent ones too) that reads the request's metadata from
// ipykernel; it leaves no name in the user's namespace.
const pythonEnvHook = `def __lelantos_env_hook():
    import os
    from IPython import get_ipython
    ip = get_ipython()
    def apply():
        try:
            env = (ip.kernel.get_parent("shell").get("metadata") or {}).get("` + envMetadataKey + `")
        except Exception:
            return
        if env:
            os.environ.update(env)
    ip.events.register("pre_execute", apply)
__lelantos_env_hook()
del __lelantos_env_hook
`

// quoteJSON is a double-quoted string literal valid in Python, JavaScript and R.
func quoteJSON(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// quoteShell is a single-quoted shell word.
func quoteShell(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var languages = map[string]language{
	"python": {kernel: "python3",
		set: func(k, v string) string {
			return fmt.Sprintf("__import__('os').environ[%s] = %s", quoteJSON(k), quoteJSON(v))
		},
		unset:   func(k string) string { return fmt.Sprintf("__import__('os').environ.pop(%s, None)", quoteJSON(k)) },
		warm:    "1+1",
		envHook: pythonEnvHook},
	"javascript": {kernel: "javascript",
		set:   func(k, v string) string { return fmt.Sprintf("process.env[%s] = %s;", quoteJSON(k), quoteJSON(v)) },
		unset: func(k string) string { return fmt.Sprintf("delete process.env[%s];", quoteJSON(k)) },
		warm:  "1+1",
		// Deno's kernel publishes output and results from a queue that can
		// lag behind the idle status of the cell.
		drain: func(token string) string { return fmt.Sprintf("console.log(%s)", quoteJSON(token)) }},
	"r": {kernel: "r",
		set: func(k, v string) string {
			return fmt.Sprintf("invisible(Sys.setenv(%s = %s))", quoteJSON(k), quoteJSON(v))
		},
		unset: func(k string) string { return fmt.Sprintf("invisible(Sys.unsetenv(%s))", quoteJSON(k)) },
		warm:  "1+1"},
	"bash": {kernel: "bash",
		set:   func(k, v string) string { return fmt.Sprintf("export %s=%s", k, quoteShell(v)) },
		unset: func(k string) string { return "unset " + k },
		warm:  "echo"},
}

func init() { languages["typescript"] = languages["javascript"] }

// NormalizeLanguage is the language name the server uses for name: trimmed,
// lower-cased, js and ts spelled out, python when empty.
func NormalizeLanguage(name string) string {
	switch n := strings.ToLower(strings.TrimSpace(name)); n {
	case "":
		return "python"
	case "js":
		return "javascript"
	case "ts":
		return "typescript"
	default:
		return n
	}
}

// Languages lists the languages the server knows, sorted.
func Languages() []string {
	out := make([]string, 0, len(languages))
	for k := range languages {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnvNames refuses names a kernel's environment cannot take.
func checkEnvNames(env map[string]string) error {
	for k, v := range env {
		if !envNameRE.MatchString(k) {
			return fmt.Errorf("env_vars: %q is not a valid variable name (letters, digits and _, not starting with a digit)", k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("env_vars.%s: the value contains a NUL byte", k)
		}
	}
	return nil
}

// envCode is the statements that set env, in a stable order, one per line.
func (l language) envCode(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(l.set(k, env[k]) + "\n")
	}
	return b.String()
}

// restoreCode is the statements that undo a run's env: each key gets its
// sandbox-level value back, or is removed.
func (l language) restoreCode(env, sandbox map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		if v, ok := sandbox[k]; ok {
			b.WriteString(l.set(k, v) + "\n")
		} else {
			b.WriteString(l.unset(k) + "\n")
		}
	}
	return b.String()
}

// withSetup prepends setup to code, indented like code's first non-empty line,
// so that both run as one cell.
func withSetup(setup, code string) string {
	if setup == "" {
		return code
	}
	indent := ""
	for _, line := range strings.Split(code, "\n") {
		if strings.TrimSpace(line) != "" {
			indent = line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			break
		}
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(setup, "\n"), "\n") {
		b.WriteString(indent + line + "\n")
	}
	return b.String() + code
}
