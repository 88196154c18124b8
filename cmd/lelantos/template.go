package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"lelantos.dev/lelantos/internal/client"
)

const templateUsage = `usage:
  lelantos template build -n NAME [-f Dockerfile] [--cpu N] [--memory MB] [--disk MB]
                          [--start-cmd CMD] [--ready-cmd CMD] [--build-arg K=V ...] CONTEXT
  lelantos template ls
  lelantos template rm NAME...

Each takes --api-url and --api-key; by default $E2B_API_URL and $E2B_API_KEY
(set -a; . .lelantos/client.env; set +a).`

// templateCmd builds, lists and deletes templates through a server's API.
func templateCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("template: a subcommand is required: build, ls or rm\n%s", templateUsage)
	}
	var err error
	switch args[0] {
	case "build":
		err = templateBuild(ctx, args[1:], os.Stdout)
	case "ls", "list":
		err = templateList(ctx, args[1:], os.Stdout)
	case "rm", "delete":
		err = templateRemove(ctx, args[1:], os.Stdout)
	case "help", "-h", "--help":
		fmt.Println(templateUsage)
		return nil
	default:
		return fmt.Errorf("template: unknown subcommand %q: use build, ls or rm", args[0])
	}
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// errHelp ends a command whose help was asked for and printed.
var errHelp = errors.New("help shown")

// parseInterspersed parses flags that may come before and after the
// positional arguments, which it returns. -h prints the usage and the flags
// and returns errHelp; a bad flag is an error naming it (no usage dump).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			fmt.Println(templateUsage)
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return nil, errHelp
		} else if err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// buildArgs collects repeated --build-arg K=V flags.
type buildArgs map[string]string

func (b buildArgs) String() string { return "" }

func (b buildArgs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	b[k] = v
	return nil
}

// templateBuild starts a build and follows its log until it ends. Ctrl-C
// stops following; the build goes on on the server.
func templateBuild(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("template build", flag.ContinueOnError)
	var api apiFlags
	api.register(fs)
	name := fs.String("n", "", "the template's name (required)")
	fs.StringVar(name, "name", "", "the template's name (same as -n)")
	dockerfile := fs.String("f", "", "the Dockerfile (default CONTEXT/Dockerfile)")
	cpu := fs.Int("cpu", 0, "CPUs of the template's sandboxes (default 2)")
	memory := fs.Int("memory", 0, "memory of the template's sandboxes in MB (default 512)")
	disk := fs.Int("disk", 0, "disk of the template's sandboxes in MB (default 1024)")
	startCmd := fs.String("start-cmd", "", "a command started at build time and running in every sandbox (snapshotted)")
	readyCmd := fs.String("ready-cmd", "", "a command that succeeds once the start command is ready")
	bargs := buildArgs{}
	fs.Var(bargs, "build-arg", "a Dockerfile ARG value, KEY=VALUE (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return fmt.Errorf("template build: %w", err)
	}
	switch {
	case len(pos) != 1:
		return errors.New("template build: give one CONTEXT directory (e.g. .)")
	case *name == "":
		return errors.New("template build: -n NAME is required")
	case *cpu < 0 || *memory < 0 || *disk < 0:
		return errors.New("template build: --cpu, --memory and --disk must not be negative")
	}
	contextDir := pos[0]
	if fi, err := os.Stat(contextDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("template build: CONTEXT %s is not a directory", contextDir)
	}
	if *dockerfile == "" {
		*dockerfile = filepath.Join(contextDir, "Dockerfile")
	}
	text, err := os.ReadFile(*dockerfile)
	if err != nil {
		return fmt.Errorf("template build: -f: %w", err)
	}
	c, err := api.client()
	if err != nil {
		return fmt.Errorf("template build: %w", err)
	}
	q := url.Values{"name": {*name}, "dockerfile": {string(text)}}
	for k, v := range map[string]int{"cpuCount": *cpu, "memoryMB": *memory, "diskSizeMB": *disk} {
		if v > 0 {
			q.Set(k, strconv.Itoa(v))
		}
	}
	for k, v := range map[string]string{"startCmd": *startCmd, "readyCmd": *readyCmd} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(bargs)) {
		q.Add("buildArg", k+"="+bargs[k])
	}
	body := contextArchive(contextDir)
	defer body.Close()
	var started struct {
		TemplateID string `json:"templateID"`
		BuildID    string `json:"buildID"`
	}
	if err := c.Send(ctx, "POST", "/templates?"+q.Encode(), "application/gzip", body, &started); err != nil {
		return fmt.Errorf("template build: %w", err)
	}
	fmt.Fprintf(out, "Building template %s: build %s\n", started.TemplateID, started.BuildID)
	return followBuild(ctx, c, started.TemplateID, started.BuildID, out)
}

// followBuild prints a build's log as it grows until the build ends: nil
// when it is ready, an error with the reason when it failed.
func followBuild(ctx context.Context, c *client.Client, name, build string, out io.Writer) error {
	const pageSize = 100
	path := "/templates/" + url.PathEscape(name) + "/builds/" + url.PathEscape(build) + "/status"
	offset, failures := 0, 0
	for {
		var st struct {
			Status     string `json:"status"`
			LogEntries []struct {
				Message string `json:"message"`
			} `json:"logEntries"`
			Reason *struct {
				Message string `json:"message"`
			} `json:"reason"`
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.Do(rctx, "GET", fmt.Sprintf("%s?logsOffset=%d&limit=%d", path, offset, pageSize), nil, &st)
		cancel()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("template build: stopped following build %s; it goes on on the server (see lelantos template ls)", build)
		case err != nil:
			if failures++; failures >= 5 {
				return fmt.Errorf("template build: follow build %s: %w", build, err)
			}
			time.Sleep(time.Second)
			continue
		}
		failures = 0
		for _, e := range st.LogEntries {
			fmt.Fprintln(out, e.Message)
		}
		offset += len(st.LogEntries)
		if len(st.LogEntries) == pageSize {
			continue // more is waiting
		}
		switch st.Status {
		case "ready":
			fmt.Fprintf(out, "Template %s is ready (build %s)\n", name, build)
			return nil
		case "error":
			reason := "no reason given"
			if st.Reason != nil {
				reason = st.Reason.Message
			}
			return fmt.Errorf("template build: build %s of template %s failed: %s", build, name, reason)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// templateList prints the server's templates.
func templateList(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("template ls", flag.ContinueOnError)
	var api apiFlags
	api.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return fmt.Errorf("template ls: %w", err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("template ls: unexpected argument %q", pos[0])
	}
	c, err := api.client()
	if err != nil {
		return fmt.Errorf("template ls: %w", err)
	}
	var list []struct {
		TemplateID  string    `json:"templateID"`
		BuildID     string    `json:"buildID"`
		Aliases     []string  `json:"aliases"`
		CPUCount    int       `json:"cpuCount"`
		MemoryMB    int       `json:"memoryMB"`
		DiskSizeMB  int       `json:"diskSizeMB"`
		BuildCount  int       `json:"buildCount"`
		BuildStatus string    `json:"buildStatus"`
		UpdatedAt   time.Time `json:"updatedAt"`
	}
	if err := c.Do(ctx, "GET", "/templates", nil, &list); err != nil {
		return fmt.Errorf("template ls: %w", err)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TEMPLATE\tNAMES\tSTATUS\tCPU\tMEMORY MB\tDISK MB\tBUILDS\tCURRENT BUILD\tUPDATED")
	for _, t := range list {
		// The template's name in its team, then its aliases.
		aliases := strings.Join(t.Aliases, ",")
		if aliases == "" {
			aliases = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", t.TemplateID, aliases, t.BuildStatus, t.CPUCount,
			t.MemoryMB, t.DiskSizeMB, t.BuildCount, t.BuildID, t.UpdatedAt.Local().Format(time.DateTime))
	}
	return w.Flush()
}

// templateRemove deletes templates.
func templateRemove(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("template rm", flag.ContinueOnError)
	var api apiFlags
	api.register(fs)
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return fmt.Errorf("template rm: %w", err)
	}
	if len(names) == 0 {
		return errors.New("template rm: give the NAME of a template")
	}
	c, err := api.client()
	if err != nil {
		return fmt.Errorf("template rm: %w", err)
	}
	var errs []error
	for _, n := range names {
		if err := c.Do(ctx, "DELETE", "/templates/"+url.PathEscape(n), nil, nil); err != nil {
			errs = append(errs, fmt.Errorf("template rm %s: %w", n, err))
			continue
		}
		fmt.Fprintf(out, "deleted template %s\n", n)
	}
	return errors.Join(errs...)
}
