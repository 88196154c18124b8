package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"lelantos.dev/lelantos/internal/controlplane"
	"lelantos.dev/lelantos/internal/store"
)

// keys manages API keys in the server's store directly: it is an administrator's
// command, run on the server's machine.
func keys(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	dir := fs.String("data-dir", "", "the server's data directory (default $LELANTOS_DATA_DIR or ./.lelantos)")
	storeAt := fs.String("store", storeFlag(), storeUsage)
	team := fs.String("team", "", "create: the key's team, by slug, made when missing (default: the team \"default\"); list: only this team's keys")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lelantos keys create NAME [--team TEAM] | list [--team TEAM] | revoke ID  [--data-dir DIR | --store STORE]")
		fs.PrintDefaults()
	}
	rest, err := parseAdminArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("keys: a subcommand is required: create, list or revoke")
	}
	db, err := openAdminStore(ctx, "keys", *dir, *storeAt)
	if err != nil {
		return err
	}
	defer db.Close()
	switch rest[0] {
	case "create":
		if len(rest) != 2 || rest[1] == "" {
			return errors.New("keys create: give the key a NAME: lelantos keys create NAME [--team TEAM]")
		}
		return createKey(ctx, db, rest[1], *team)
	case "list":
		if len(rest) != 1 {
			return fmt.Errorf("keys list: unexpected argument %q", rest[1])
		}
		return listKeys(ctx, db, *team)
	case "revoke":
		if len(rest) != 2 {
			return errors.New("keys revoke: give the key's ID (see lelantos keys list)")
		}
		if err := controlplane.RevokeAPIKey(ctx, db, rest[1]); err != nil {
			return fmt.Errorf("keys revoke: %w", err)
		}
		fmt.Printf("revoked key %s\n", rest[1])
	default:
		return fmt.Errorf("keys: unknown subcommand %q: use create, list or revoke", rest[0])
	}
	return nil
}

// createKey makes a key named name in the team with slug team ("" = the
// default team), making the team when it does not exist, and prints the key.
func createKey(ctx context.Context, db *store.DB, name, team string) error {
	if team == "" {
		team = store.DefaultTeamSlug
	}
	t, created, err := controlplane.EnsureTeam(ctx, db, team)
	if err != nil {
		return fmt.Errorf("keys create: --team: %w", err)
	}
	if created {
		fmt.Printf("created team %s (%s) with the server's default quotas\n", t.Slug, t.ID)
	}
	plain, k, err := controlplane.CreateTeamAPIKey(ctx, db, t.ID, name)
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	fmt.Printf("created key %s (%s) of team %s; it is shown only once:\n%s\n", k.ID, k.Name, t.Slug, plain)
	return nil
}

// listKeys prints every key, or the keys of the team with slug team.
func listKeys(ctx context.Context, db *store.DB, team string) error {
	teams, err := controlplane.ListTeams(ctx, db)
	if err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	slugs := map[string]string{}
	teamID := ""
	for _, t := range teams {
		slugs[t.ID] = t.Slug
		if t.Slug == team {
			teamID = t.ID
		}
	}
	if team != "" && teamID == "" {
		return fmt.Errorf("keys list: --team: team %q not found", team)
	}
	ks, err := controlplane.ListAPIKeys(ctx, db)
	if err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTEAM\tNAME\tPREFIX\tCREATED\tLAST USED\tREVOKED")
	for _, k := range ks {
		if teamID != "" && k.TeamID != teamID {
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, slugs[k.TeamID], k.Name, k.Prefix,
			k.CreatedAt.Format(time.RFC3339), when(k.LastUsedAt), when(k.RevokedAt))
	}
	return w.Flush()
}

// parseAdminArgs parses fs's flags wherever they are among args (as in
// "keys create NAME --team T") and returns the other arguments in order.
func parseAdminArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
