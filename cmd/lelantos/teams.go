package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// quotaFlag is a quota given on the command line: a count (0 = unlimited) or
// "default" (follow the server's default).
type quotaFlag struct {
	given bool
	value *int
}

// String implements flag.Value.
func (q *quotaFlag) String() string {
	if q == nil || !q.given {
		return ""
	}
	return quotaText(q.value)
}

// Set implements flag.Value.
func (q *quotaFlag) Set(s string) error {
	q.given = true
	if s == "default" {
		q.value = nil
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New(`want a count (0 = unlimited) or "default"`)
	}
	q.value = &n
	return nil
}

// quotaText shows a team's quota: its value, "unlimited" or "default".
func quotaText(v *int) string {
	switch {
	case v == nil:
		return "default"
	case *v == 0:
		return "unlimited"
	}
	return strconv.Itoa(*v)
}

// teamFlags are the flags of teams create and set.
type teamFlags struct {
	name                              string
	sandboxes, vcpu, memoryMB, builds quotaFlag
}

// register adds the flags to fs.
func (f *teamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "the team's display name (create: the slug when not given)")
	fs.Var(&f.sandboxes, "max-sandboxes", `most running sandboxes at once (paused ones do not count); 0 = unlimited, "default" = the server's`)
	fs.Var(&f.vcpu, "max-vcpu", `most vCPUs of the running sandboxes together; 0 = unlimited, "default" = the server's`)
	fs.Var(&f.memoryMB, "max-memory-mb", `most memory (MB) of the running sandboxes together; 0 = unlimited, "default" = the server's`)
	fs.Var(&f.builds, "max-builds", `most template builds at once; 0 = unlimited, "default" = the server's`)
}

// apply sets the quotas given on the command line in q.
func (f *teamFlags) apply(q *store.QuotaSettings) {
	for _, p := range []struct {
		flag *quotaFlag
		dst  **int
	}{{&f.sandboxes, &q.MaxSandboxes}, {&f.vcpu, &q.MaxVCPU}, {&f.memoryMB, &q.MaxMemoryMB}, {&f.builds, &q.MaxBuilds}} {
		if p.flag.given {
			*p.dst = p.flag.value
		}
	}
}

// teamsCmd manages teams and their quotas in the server's store directly:
// an administrator's command, run on the server's machine. A running server
// applies changed quotas to its next admissions.
func teamsCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("teams", flag.ContinueOnError)
	dir := fs.String("data-dir", "", "the server's data directory (default $LELANTOS_DATA_DIR or ./.lelantos)")
	storeAt := fs.String("store", storeFlag(), storeUsage)
	var tf teamFlags
	tf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lelantos teams list | create TEAM [flags] | set TEAM [flags]  [--data-dir DIR | --store STORE]")
		fmt.Fprintln(fs.Output(), "TEAM is a slug: 1-63 of a-z, 0-9, '-' and '_'. A quota not set follows the server's default (lelantos serve --team-max-*).")
		fs.PrintDefaults()
	}
	rest, err := parseAdminArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("teams: a subcommand is required: list, create or set")
	}
	db, err := openAdminStore(ctx, "teams", *dir, *storeAt)
	if err != nil {
		return err
	}
	defer db.Close()
	switch rest[0] {
	case "list", "ls":
		if len(rest) != 1 {
			return fmt.Errorf("teams list: unexpected argument %q", rest[1])
		}
		return listTeams(ctx, db)
	case "create":
		if len(rest) != 2 {
			return errors.New("teams create: give the team's slug: lelantos teams create TEAM [flags]")
		}
		var q store.QuotaSettings
		tf.apply(&q)
		t, err := controlplane.CreateTeam(ctx, db, rest[1], tf.name, q)
		if err != nil {
			return fmt.Errorf("teams create: %w", err)
		}
		fmt.Printf("created team %s (%s)\n", t.Slug, t.ID)
	case "set":
		if len(rest) != 2 {
			return errors.New("teams set: give the team's slug: lelantos teams set TEAM [flags]")
		}
		t, err := controlplane.TeamBySlug(ctx, db, rest[1])
		if err != nil {
			return fmt.Errorf("teams set: %w", err)
		}
		if tf.name != "" {
			t.Name = tf.name
		}
		tf.apply(&t.Quotas)
		if err := controlplane.UpdateTeam(ctx, db, t); err != nil {
			return fmt.Errorf("teams set: %w", err)
		}
		fmt.Printf("team %s: max-sandboxes %s, max-vcpu %s, max-memory-mb %s, max-builds %s\n", t.Slug,
			quotaText(t.Quotas.MaxSandboxes), quotaText(t.Quotas.MaxVCPU), quotaText(t.Quotas.MaxMemoryMB), quotaText(t.Quotas.MaxBuilds))
	default:
		return fmt.Errorf("teams: unknown subcommand %q: use list, create or set", rest[0])
	}
	return nil
}

// listTeams prints every team with its quotas and number of active keys.
func listTeams(ctx context.Context, db *store.DB) error {
	teams, err := controlplane.ListTeams(ctx, db)
	if err != nil {
		return fmt.Errorf("teams list: %w", err)
	}
	ks, err := controlplane.ListAPIKeys(ctx, db)
	if err != nil {
		return fmt.Errorf("teams list: %w", err)
	}
	active := map[string]int{}
	for _, k := range ks {
		if k.RevokedAt == nil {
			active[k.TeamID]++
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TEAM\tNAME\tID\tKEYS\tMAX-SANDBOXES\tMAX-VCPU\tMAX-MEMORY-MB\tMAX-BUILDS\tCREATED")
	for _, t := range teams {
		q := t.Quotas
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", t.Slug, t.Name, t.ID, active[t.ID], quotaText(q.MaxSandboxes),
			quotaText(q.MaxVCPU), quotaText(q.MaxMemoryMB), quotaText(q.MaxBuilds), t.CreatedAt.Format(time.RFC3339))
	}
	return w.Flush()
}
