package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"lelantos.dev/lelantos/internal/client"
)

// sandboxCommand is one `lelantos sandbox` subcommand.
type sandboxCommand struct {
	names []string
	// usage is the synopsis after "lelantos sandbox ".
	usage string
	run   func(ctx context.Context, args []string) error
}

// sandboxCommands lists the subcommands in the order the usage shows them.
func sandboxCommands() []sandboxCommand {
	return []sandboxCommand{
		{[]string{"create"}, "create [--template base] [--timeout 300] [--metadata k=v ...] [--env K=V ...]", sandboxCreate},
		{[]string{"ls", "list"}, "ls [--state running,paused] [--metadata k=v ...] [--json]", sandboxList},
		{[]string{"info"}, "info ID [--json]", sandboxInfo},
		{[]string{"exec"}, "exec ID [--user U] [--cwd DIR] [--env K=V ...] [--] CMD [ARGS...]", sandboxExec},
		{[]string{"shell"}, "shell ID [--user U]", sandboxShell},
		{[]string{"cp"}, "cp [--user U] SRC DST   (one of them ID:/path; - is stdin or stdout)", sandboxCopy},
		{[]string{"logs"}, "logs ID [-f] [--since DURATION]", sandboxLogs},
		{[]string{"metrics"}, "metrics ID [--since DURATION] [--json]", sandboxMetrics},
		{[]string{"pause"}, "pause ID", sandboxPause},
		{[]string{"resume"}, "resume ID [--timeout SECONDS]", sandboxResume},
		{[]string{"kill"}, "kill ID [ID...]", sandboxKill},
	}
}

// sandboxUsage is the usage of `lelantos sandbox`.
func sandboxUsage() string {
	var b strings.Builder
	b.WriteString("usage: lelantos sandbox <command> (alias: lelantos sb)\n\n")
	for _, c := range sandboxCommands() {
		fmt.Fprintf(&b, "  lelantos sandbox %s\n", c.usage)
	}
	b.WriteString("\nEach takes --api-url, --api-key and --sandbox-url; by default $E2B_API_URL,\n" +
		"$E2B_API_KEY and $E2B_SANDBOX_URL (set -a; . .lelantos/client.env; set +a).")
	return b.String()
}

// sandboxCmd runs a `lelantos sandbox` subcommand; its errors start with
// "sandbox <subcommand>:".
func sandboxCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("sandbox: a subcommand is required (lelantos sandbox -h lists them)")
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Println(sandboxUsage())
		return nil
	}
	for _, c := range sandboxCommands() {
		for _, n := range c.names {
			if n != name {
				continue
			}
			err := c.run(ctx, args[1:])
			var code exitCode
			switch {
			case err == nil, errors.Is(err, errHelp):
				return nil
			case errors.As(err, &code):
				return err
			}
			return fmt.Errorf("sandbox %s: %w", c.names[0], err)
		}
	}
	return usagef("sandbox: unknown subcommand %q (lelantos sandbox -h lists them)", name)
}

// usageError is a bad command line: the CLI exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitCode ends the CLI with a status and no message of its own: the exit
// status of a command run in a sandbox, or failures already reported.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// exitStatus prints err on stderr (unless it is an exitCode) and returns the
// CLI's exit status: 2 for usage errors, 1 for the others.
func exitStatus(err error) int {
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintln(os.Stderr, "lelantos:", err)
	var u *usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// sandboxFlags starts the flag set of a subcommand, with the connection
// flags; the usage line is printed for -h.
func sandboxFlags(name string, api *apiFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("sandbox "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	api.registerSandbox(fs)
	return fs
}

// parseFlags parses args with fs. Flags may come before and between the
// positional arguments, which it returns; "--" ends the flags, and with
// stopAfter > 0 so does the positional argument number stopAfter+1 (the
// rest is returned as is, for a command line). -h prints the usage and
// returns errHelp.
func parseFlags(fs *flag.FlagSet, args []string, stopAfter int) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			printHelp(fs)
			return nil, errHelp
		}
		if err != nil {
			return nil, flagError(err)
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if stopAfter > 0 && len(pos) == stopAfter {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printHelp prints a subcommand's usage line and flags on stdout.
func printHelp(fs *flag.FlagSet) {
	name := strings.TrimPrefix(fs.Name(), "sandbox ")
	for _, c := range sandboxCommands() {
		if c.names[0] == name {
			fmt.Printf("usage: lelantos sandbox %s\n\nflags:\n", c.usage)
		}
	}
	fs.SetOutput(os.Stdout)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// flagError rewrites the flag package's errors as one line naming the flag
// the way it is typed, e.g. `--timeout "x": not a number of seconds`.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return usagef("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return usagef("--%s needs a value", name)
	}
	invalid := regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-(\S+): (.*)$`)
	if m := invalid.FindStringSubmatch(msg); m != nil {
		if strings.HasPrefix(msg, "invalid boolean") {
			m[3] = "want true or false"
		}
		return usagef("--%s %s: %s", m[2], m[1], m[3])
	}
	return usagef("%s", msg)
}

// pairsFlag collects repeated KEY=VALUE flags.
type pairsFlag map[string]string

func (p pairsFlag) String() string { return "" }

func (p pairsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	p[k] = v
	return nil
}

// secondsFlag is a non-negative whole number of seconds.
type secondsFlag struct{ v *int }

func (s secondsFlag) String() string {
	if s.v == nil {
		return ""
	}
	return strconv.Itoa(*s.v)
}

func (s secondsFlag) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return errors.New("not a number of seconds")
	}
	*s.v = n
	return nil
}

// sinceFlag is a positive duration, e.g. 90s or 10m.
type sinceFlag struct{ v *time.Duration }

func (s sinceFlag) String() string {
	if s.v == nil || *s.v == 0 {
		return ""
	}
	return s.v.String()
}

func (s sinceFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("not a positive duration (e.g. 90s, 10m, 2h)")
	}
	*s.v = d
	return nil
}

// needIDs checks the positional arguments of a command taking sandbox IDs:
// exactly one unless many is set.
func needIDs(pos []string, many bool) error {
	switch {
	case len(pos) == 0:
		return usagef("give the ID of a sandbox (lelantos sandbox ls lists them)")
	case !many && len(pos) > 1:
		return usagef("unexpected argument %q: give one sandbox ID", pos[1])
	}
	for _, id := range pos {
		if id == "" {
			return usagef("empty sandbox ID")
		}
	}
	return nil
}

// formatPairs writes a string map as k=v,k2=v2 sorted by key, "-" when empty.
func formatPairs(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// oneSandbox parses a subcommand's flags, which must leave exactly one sandbox ID,
// and returns it with a client of the API configured by api.
func oneSandbox(fs *flag.FlagSet, api *apiFlags, args []string) (string, *client.Client, error) {
	pos, err := parseFlags(fs, args, 0)
	if err != nil {
		return "", nil, err
	}
	if err := needIDs(pos, false); err != nil {
		return "", nil, err
	}
	c, err := api.client()
	if err != nil {
		return "", nil, err
	}
	return pos[0], c, nil
}
