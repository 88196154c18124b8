package interpreter

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// drainTimeout bounds the wait for a drain's line; a kernel that does not
// print it in that time is taken to have nothing more to publish.
const drainTimeout = 5 * time.Second

// drain collects the output a kernel with KernelOptions.Drain publishes after
// the idle status of the execution whose messages come to w, and hands it to
// onIOPub. It runs the drain code with a fresh token, silently: the kernel
// publishes from one queue in order, so every message before the token's
// line is the earlier execution's, whichever request the kernel names as its
// parent (Deno names the request it is serving when it publishes, so late
// output can come under the drain's own id). The drain's own messages (its
// status, input and line) are dropped. It returns once the line, the drain's
// reply and its idle status have come, so that the kernel is free again.
func (k *Kernel) drain(ctx context.Context, w *waiter, onIOPub func(*Message)) error {
	token := "lelantos-drain-" + newUUID()
	id, dw, err := k.request(chanShell, "execute_request", map[string]any{
		"code": k.opts.Drain(token), "silent": true, "store_history": false, "user_expressions": map[string]any{},
		"allow_stdin": false, "stop_on_error": false,
	})
	if err != nil {
		return fmt.Errorf("drain late output: %w", err)
	}
	defer k.release(id)
	timeout := time.NewTimer(drainTimeout)
	defer timeout.Stop()
	seen, replied, idle := false, false, false
	for !seen || !replied || !idle {
		select {
		case m := <-w.ch:
			if ChannelOf(m) == string(chanIOPub) && m.Header.MsgType != "status" {
				onIOPub(m)
			}
		case m := <-dw.ch:
			switch {
			case ChannelOf(m) == string(chanShell):
				replied = replied || m.Header.MsgType == "execute_reply"
			case m.Header.MsgType == "status":
				idle = idle || statusIs(m, "idle")
			case m.Header.MsgType == "execute_input" || seen:
			case m.Header.MsgType == "stream" && streamHasLine(m, token):
				seen = true
			default:
				onIOPub(m)
			}
		case <-timeout.C:
			k.log.Warn("the kernel did not print a drain's line in time", "waited", drainTimeout)
			return nil
		case <-ctx.Done():
			return nil
		case <-k.dead:
			return fmt.Errorf("drain late output: %w", ErrKernelDied)
		}
	}
	return nil
}

// statusIs tells whether a status message reports state.
func statusIs(m *Message, state string) bool {
	var st struct {
		State string `json:"execution_state"`
	}
	_ = json.Unmarshal(m.Content, &st)
	return st.State == state
}

// streamHasLine tells whether a stream message holds the line token.
func streamHasLine(m *Message, token string) bool {
	var c struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(m.Content, &c)
	return strings.Contains(c.Text, token)
}
