package template

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/gen/envd/process"
	"lelantos.dev/lelantos/internal/gen/envd/process/processconnect"
)

// snapshot starts the template's start command in a sandbox of the finished tree,
// waits until the ready command succeeds (or DefaultReadyWait without one), and
// checkpoints the sandbox into meta.SnapshotDir.
func (b *Builder) snapshot(ctx context.Context, meta *Metadata, log *buildLog) error {
	id := "tplsnap" + randHex(8)
	log.infof("Start command: running %q in a sandbox of the template", meta.StartCmd)
	start := time.Now()
	st, err := b.opts.Engine.Create(ctx, engine.Spec{
		ID: id, TemplateID: meta.Name, RootfsPath: meta.Rootfs,
		CPUCount: meta.CPUCount, MemoryMB: meta.MemoryMB, DiskSizeMB: meta.DiskSizeMB,
		EnvVars: meta.Env, AllowInternet: true, DefaultUser: meta.DefaultUser, DefaultWorkdir: meta.DefaultWorkdir,
		StartCmd: meta.StartCmd,
	})
	if err != nil {
		return fmt.Errorf("%w: start command: %w", ErrStepFailed, err)
	}
	log.infof(" ---> sandbox %s started in %s", id, time.Since(start).Round(time.Millisecond))
	snapped := false
	defer func() {
		if !snapped {
			if err := b.opts.Engine.Kill(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, engine.ErrNotFound) {
				b.opts.Logger.Error("remove start command sandbox", "sandbox", id, "err", err)
			}
		}
	}()
	if err := b.waitReady(ctx, st.Address, meta, log); err != nil {
		return err
	}
	ready := time.Since(start)
	snapped = true // Snapshot removes the sandbox whatever happens
	if err := b.opts.Engine.Snapshot(ctx, id, meta.SnapshotDir); err != nil {
		return fmt.Errorf("%w: snapshot the start command: %w", ErrStepFailed, err)
	}
	log.infof(" ---> snapshot taken: ready after %s, snapshot %s", ready.Round(time.Millisecond), (time.Since(start) - ready).Round(time.Millisecond))
	return nil
}

// waitReady runs the ready command until it exits 0.
func (b *Builder) waitReady(ctx context.Context, addr string, meta *Metadata, log *buildLog) error {
	if meta.ReadyCmd == "" {
		log.infof("No ready command: waiting %s", DefaultReadyWait)
		select {
		case <-time.After(DefaultReadyWait):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.ReadyTimeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	client := processconnect.NewProcessClient(hc, "http://"+net.JoinHostPort(addr, strconv.Itoa(engine.EnvdPort)))
	var last string
	for attempt := 1; ; attempt++ {
		code, out, err := runCommand(ctx, client, meta.ReadyCmd)
		if err == nil && code == 0 {
			log.infof("Ready command %q succeeded (check %d)", meta.ReadyCmd, attempt)
			return nil
		}
		last = fmt.Sprintf("exit code %d: %s", code, out)
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the ready command %q did not succeed within %s (last: %s)", ErrStepFailed, meta.ReadyCmd, b.opts.ReadyTimeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// runCommand runs cmd with bash -l -c in the sandbox, as its default user, and
// returns its exit code and output.
func runCommand(ctx context.Context, c processconnect.ProcessClient, cmd string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := c.Start(ctx, connect.NewRequest(&process.StartRequest{
		Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}},
	}))
	if err != nil {
		return -1, "", err
	}
	defer stream.Close()
	var out strings.Builder
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if d := ev.GetData(); d != nil && out.Len() < 4096 {
			out.Write(d.GetStdout())
			out.Write(d.GetStderr())
		}
		if end := ev.GetEnd(); end != nil {
			return int(end.GetExitCode()), strings.TrimSpace(out.String()), nil
		}
	}
	if err := stream.Err(); err != nil {
		return -1, "", err
	}
	return -1, "", errors.New("the process stream ended without an exit status")
}
