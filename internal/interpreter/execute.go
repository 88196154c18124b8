package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ExecuteReply is the content of an execute_reply.
type ExecuteReply struct {
	Status         string   `json:"status"`
	ExecutionCount int      `json:"execution_count"`
	EName          string   `json:"ename"`
	EValue         string   `json:"evalue"`
	Traceback      []string `json:"traceback"`
}

// ErrInterruptFailed: an interrupted execution did not end in time.
var ErrInterruptFailed = errors.New("the kernel did not stop after an interrupt")

// replyGrace is how long an execution that went idle waits for its reply.
const replyGrace = 2 * time.Second

// interruptWait is how long an interrupted execution may take to end; past
// it the kernel is replaced, so that its context is usable again.
const interruptWait = 5 * time.Second

// Execute runs code in the kernel and hands every iopub message of the
// execution to onIOPub, in order. It returns when the kernel is idle again after
// the request, with the reply (nil when none came). When ctx ends first the
// kernel is interrupted and the execution drained, so that the kernel is free
// for the next one; the error is then ctx's.
func (k *Kernel) Execute(ctx context.Context, code string, silent bool, onIOPub func(*Message)) (*ExecuteReply, error) {
	return k.execute(ctx, code, executeFlags{silent: silent, storeHistory: !silent}, onIOPub)
}

// executeFlags are an execute_request's options beside its code.
type executeFlags struct {
	// silent runs the code without output; storeHistory counts it as an
	// execution. A run that is not silent and not stored shows its result but
	// is not counted.
	silent, storeHistory bool
	// env, when set, is applied to the kernel's environment before the code
	// runs; only a kernel whose envHook is set reads it.
	env map[string]string
}

// execute is Execute with all of an execute_request's options.
func (k *Kernel) execute(ctx context.Context, code string, f executeFlags, onIOPub func(*Message)) (*ExecuteReply, error) {
	var meta map[string]any
	if f.env != nil {
		meta = map[string]any{envMetadataKey: f.env}
	}
	id, w, err := k.requestWith(chanShell, "execute_request", map[string]any{
		"code": code, "silent": f.silent, "store_history": f.storeHistory, "user_expressions": map[string]any{},
		"allow_stdin": false, "stop_on_error": true,
	}, meta)
	if err != nil {
		return nil, fmt.Errorf("execute: %w", err)
	}
	defer k.release(id)
	var (
		reply    *ExecuteReply
		idle     bool
		grace    <-chan time.Time
		stuck    <-chan time.Time
		ctxDone  = ctx.Done()
		canceled error
	)
	for reply == nil || !idle {
		select {
		case m := <-w.ch:
			switch ChannelOf(m) {
			case string(chanShell):
				if m.Header.MsgType == "execute_reply" {
					reply = &ExecuteReply{}
					if err := json.Unmarshal(m.Content, reply); err != nil {
						return nil, fmt.Errorf("execute: decode the reply: %w", err)
					}
				}
			case string(chanIOPub):
				if m.Header.MsgType == "status" {
					if statusIs(m, "idle") {
						idle = true
						grace = time.After(replyGrace)
					}
					continue
				}
				onIOPub(m)
			}
		case <-grace:
			return reply, canceled
		case <-ctxDone:
			ctxDone, canceled = nil, ctx.Err()
			if err := k.Interrupt(); err != nil {
				k.log.Warn("interrupt", "err", err)
			}
			stuck = time.After(interruptWait)
		case <-stuck:
			return reply, fmt.Errorf("execute: %w (%w)", ErrInterruptFailed, canceled)
		case <-k.dead:
			return reply, fmt.Errorf("execute: %w", ErrKernelDied)
		}
	}
	if k.opts.Drain != nil && !f.silent && canceled == nil {
		if err := k.drain(ctx, w, onIOPub); err != nil {
			return reply, fmt.Errorf("execute: %w", err)
		}
	}
	return reply, canceled
}

// Run executes code silently and returns an error when it fails, with the
// error's name and value; stream output is dropped.
func (k *Kernel) Run(ctx context.Context, code string) error {
	var failure string
	reply, err := k.Execute(ctx, code, true, func(m *Message) {
		if m.Header.MsgType == "error" && failure == "" {
			var e struct {
				EName  string `json:"ename"`
				EValue string `json:"evalue"`
			}
			_ = json.Unmarshal(m.Content, &e)
			failure = e.EName + ": " + e.EValue
		}
	})
	if err != nil {
		return err
	}
	if failure == "" && reply != nil && reply.Status == "error" {
		failure = reply.EName + ": " + reply.EValue
	}
	if failure != "" {
		return fmt.Errorf("run setup code: %s", failure)
	}
	return nil
}

// warmUp runs in the kernel what a context's first execution runs, and leaves
// nothing of it behind: the setting and removal of an environment variable, as
// the sandbox's are set, then expr with its result shown but not counted. A
// kernel's first execution loads the code of execution and display; a template
// whose snapshot is taken after it spares every sandbox that cost.
func (k *Kernel) warmUp(ctx context.Context, l language, expr string) error {
	const name = "LELANTOS_WARM_UP"
	if err := k.Run(ctx, l.set(name, "1")+"\n"+l.unset(name)+"\n"); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	if l.envHook != "" {
		if err := k.Run(ctx, l.envHook); err != nil {
			return fmt.Errorf("warm up: install the environment hook: %w", err)
		}
		k.envHook.Store(true)
	}
	reply, err := k.execute(ctx, expr, executeFlags{}, func(*Message) {})
	if err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	if reply == nil || reply.Status != "ok" {
		return fmt.Errorf("warm up: %s gave %+v", expr, reply)
	}
	return nil
}
