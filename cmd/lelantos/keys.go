package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lelantos keys [--data-dir DIR] create NAME | list | revoke ID")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("keys: a subcommand is required: create, list or revoke")
	}
	d, err := dataDir(*dir)
	if err != nil {
		return fmt.Errorf("keys: --data-dir: %w", err)
	}
	dbPath := filepath.Join(d, "lelantos.db")
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("keys: no store at %s (start the server once, or pass --data-dir): %w", dbPath, err)
	}
	db, err := store.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer db.Close()
	switch rest[0] {
	case "create":
		if len(rest) != 2 || rest[1] == "" {
			return errors.New("keys create: give the key a NAME: lelantos keys create NAME")
		}
		plain, k, err := controlplane.CreateAPIKey(ctx, db, rest[1])
		if err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		fmt.Printf("created key %s (%s); it is shown only once:\n%s\n", k.ID, k.Name, plain)
	case "list":
		ks, err := controlplane.ListAPIKeys(ctx, db)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tPREFIX\tCREATED\tLAST USED\tREVOKED")
		for _, k := range ks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.CreatedAt.Format(time.RFC3339), when(k.LastUsedAt), when(k.RevokedAt))
		}
		return w.Flush()
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

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
