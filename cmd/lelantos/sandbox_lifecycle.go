package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"lelantos.dev/lelantos/internal/client"
)

// sandboxCreate starts a sandbox and prints its ID, alone, on stdout.
func sandboxCreate(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("create", &api)
	template := fs.String("template", "base", "the template to start")
	timeout := 300
	fs.Var(secondsFlag{&timeout}, "timeout", "seconds until the sandbox is killed (default 300)")
	metadata, env := pairsFlag{}, pairsFlag{}
	fs.Var(metadata, "metadata", "a metadata pair KEY=VALUE (repeatable)")
	fs.Var(env, "env", "an environment variable KEY=VALUE of every process (repeatable)")
	pos, err := parseFlags(fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if strings.TrimSpace(*template) == "" {
		return usagef("--template: must not be empty")
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	sb, err := c.Create(ctx, client.CreateRequest{TemplateID: *template, Timeout: timeout, Metadata: metadata, EnvVars: env})
	if err != nil {
		return err
	}
	fmt.Println(sb.SandboxID)
	return nil
}

// stateFlag is a comma list of sandbox states.
type stateFlag struct{ v *[]string }

func (s stateFlag) String() string {
	if s.v == nil {
		return ""
	}
	return strings.Join(*s.v, ",")
}

func (s stateFlag) Set(v string) error {
	var states []string
	for _, st := range strings.Split(v, ",") {
		st = strings.TrimSpace(st)
		if st != client.StateRunning && st != client.StatePaused {
			return errors.New("want running, paused or running,paused")
		}
		if !slices.Contains(states, st) {
			states = append(states, st)
		}
	}
	*s.v = states
	return nil
}

// sandboxList prints the sandboxes as a table, or as JSON.
func sandboxList(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("ls", &api)
	states := []string{client.StateRunning, client.StatePaused}
	fs.Var(stateFlag{&states}, "state", "the states listed, comma-separated (default running,paused)")
	metadata := pairsFlag{}
	fs.Var(metadata, "metadata", "list only sandboxes with this metadata pair KEY=VALUE (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	list, err := c.List(ctx, client.ListOptions{States: states, Metadata: metadata})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(list)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTEMPLATE\tSTATE\tSTARTED\tEND\tCPU\tMEMORY\tMETADATA")
	for _, sb := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d MB\t%s\n", sb.SandboxID, templateName(sb), sb.State,
			localTime(sb.StartedAt), localTime(sb.EndAt), sb.CPUCount, sb.MemoryMB, formatPairs(sb.Metadata))
	}
	return w.Flush()
}

// templateName is a sandbox's template alias, else its ID.
func templateName(sb client.ListedSandbox) string {
	if sb.Alias != "" {
		return sb.Alias
	}
	return sb.TemplateID
}

// localTime formats t in the local time zone to the second.
func localTime(t time.Time) string { return t.Local().Format(time.DateTime) }

// printJSON prints v as indented JSON on stdout.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// sandboxInfo prints one sandbox's details.
func sandboxInfo(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("info", &api)
	asJSON := fs.Bool("json", false, "print JSON (it includes the sandbox's access token)")
	id, c, err := oneSandbox(fs, &api, args)
	if err != nil {
		return err
	}
	d, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(d)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	rows := [][2]string{
		{"ID", d.SandboxID}, {"TEMPLATE", templateName(d.ListedSandbox)}, {"STATE", d.State},
		{"STARTED", localTime(d.StartedAt)}, {"END", localTime(d.EndAt)},
		{"CPU", fmt.Sprint(d.CPUCount)}, {"MEMORY", fmt.Sprintf("%d MB", d.MemoryMB)},
		{"DISK", fmt.Sprintf("%d MB", d.DiskSizeMB)}, {"RUNTIME", d.RuntimeClass},
		{"ENVD", d.EnvdVersion}, {"ON TIMEOUT", d.Lifecycle.OnTimeout}, {"METADATA", formatPairs(d.Metadata)},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\n", r[0], r[1])
	}
	return w.Flush()
}

// sandboxPause pauses a sandbox and prints its ID.
func sandboxPause(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("pause", &api)
	id, c, err := oneSandbox(fs, &api, args)
	if err != nil {
		return err
	}
	if err := c.Pause(ctx, id); err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

// sandboxResume resumes a paused sandbox and prints its ID.
func sandboxResume(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("resume", &api)
	timeout := 0
	fs.Var(secondsFlag{&timeout}, "timeout", "seconds until the resumed sandbox is killed (default: the server's, 300)")
	id, c, err := oneSandbox(fs, &api, args)
	if err != nil {
		return err
	}
	sb, err := c.Resume(ctx, id, timeout)
	if err != nil {
		return err
	}
	fmt.Println(sb.SandboxID)
	return nil
}

// sandboxKill kills sandboxes, printing each ID killed; every failure is
// reported on its own line and makes the exit status 1.
func sandboxKill(ctx context.Context, args []string) error {
	var api apiFlags
	fs := sandboxFlags("kill", &api)
	pos, err := parseFlags(fs, args, 0)
	if err != nil {
		return err
	}
	if err := needIDs(pos, true); err != nil {
		return err
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	failed := false
	for _, id := range pos {
		if err := c.Kill(ctx, id); err != nil {
			fmt.Fprintf(os.Stderr, "lelantos: sandbox kill: %v\n", err)
			failed = true
			continue
		}
		fmt.Println(id)
	}
	if failed {
		return exitCode(1)
	}
	return nil
}
