package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

const nodesUsage = `usage: lelantos nodes [ls] [--json] | nodes drain ID | nodes ready ID   [--api-url URL --api-key KEY]

ls lists the nodes with their state and sandboxes; drain stops new sandboxes on a
node (those it holds go on), ready takes them again. A key of the default team is
needed (the operator's).`

// nodesCmd runs `lelantos nodes`, a client of GET /nodes and POST /nodes/{id}.
func nodesCmd(ctx context.Context, args []string) error {
	var api apiFlags
	fs := flag.NewFlagSet("nodes", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	api.register(fs)
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parseFlags(fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		pos = []string{"ls"}
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	switch {
	case (pos[0] == "ls" || pos[0] == "list") && len(pos) == 1:
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return fmt.Errorf("nodes ls: %w", err)
		}
		if *asJSON {
			return printJSON(nodes)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tSTATE\tSANDBOXES\tSTARTING\tPAUSED\tWARM\tVCPUS\tMEMORY\tCPU\tHEARTBEAT")
		for _, n := range nodes {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d/%d\t%d/%d MiB\t%d%%\t%s\n", n.ID, n.Status, n.SandboxCount,
				n.SandboxStartingCount, n.PausedSandboxCount, n.WarmSandboxCount, n.Metrics.AllocatedCPU, n.LimitCPU,
				n.Metrics.AllocatedMemoryBytes>>20, n.LimitMemoryBytes>>20, n.Metrics.CPUPercent, localTime(n.LastHeartbeat))
		}
		return w.Flush()
	case (pos[0] == "drain" || pos[0] == "ready") && len(pos) == 2:
		status := map[string]string{"drain": "draining", "ready": "ready"}[pos[0]]
		if err := c.SetNodeStatus(ctx, pos[1], status); err != nil {
			return fmt.Errorf("nodes %s: %w", pos[0], err)
		}
		fmt.Printf("node %s is %s\n", pos[1], status)
		return nil
	}
	return usagef("%s", nodesUsage)
}
