package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResumer resumes by adding the sandbox to its resolver's targets after a
// delay, or fails with err; it counts its calls and records the last request.
type fakeResumer struct {
	mu      sync.Mutex
	res     *fakeResolver
	target  Target
	delay   time.Duration
	err     error
	calls   atomic.Int32
	last    ResumeRequest
	ctxDone atomic.Bool // the last call's context ended before it returned
}

func (f *fakeResumer) ResumeForTraffic(ctx context.Context, req ResumeRequest) (Target, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.last = req
	f.mu.Unlock()
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		f.ctxDone.Store(true)
		return Target{}, ctx.Err()
	}
	if f.err != nil {
		return Target{}, f.err
	}
	f.mu.Lock()
	f.res.targets[req.SandboxID] = f.target
	f.mu.Unlock()
	return f.target, nil
}

// TestResumeOnTraffic: a request to a sandbox the resolver does not find is
// served once the Resumer has resumed it; concurrent requests share one resume;
// the Resumer's refusals get E2B's answers, and a resume that takes too long is
// answered without waiting for it.
func TestResumeOnTraffic(t *testing.T) {
	port := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "served by the resumed sandbox")
	}))
	get := func(t *testing.T, addr, id string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
		req.Header.Set(HeaderSandboxID, id)
		req.Header.Set(HeaderSandboxPort, strconv.Itoa(port))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := proxyClient(t, addr, nil, false).Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		return resp.StatusCode, readAll(t, resp)
	}

	t.Run("concurrent requests, one resume", func(t *testing.T) {
		res := &fakeResolver{targets: map[string]Target{}}
		rs := &fakeResumer{res: res, target: Target{Address: "127.0.0.1"}, delay: 300 * time.Millisecond}
		addr := serveProxy(t, newTestProxy(t, Config{Resumer: rs}, lockedResolver{res, &rs.mu}), false)
		var wg sync.WaitGroup
		codes, bodies := make([]int, 8), make([]string, 8)
		for i := range codes {
			wg.Go(func() {
				codes[i], bodies[i] = get(t, addr, "sbxa", map[string]string{HeaderTrafficAccessToken: "tt", "X-Access-Token": "at"})
			})
		}
		wg.Wait()
		for i := range codes {
			if codes[i] != http.StatusOK || bodies[i] != "served by the resumed sandbox" {
				t.Errorf("request %d: %d %q", i, codes[i], bodies[i])
			}
		}
		if n := rs.calls.Load(); n != 1 {
			t.Errorf("%d resumes for 8 concurrent requests, want 1", n)
		}
		if rs.last != (ResumeRequest{SandboxID: "sbxa", Port: port, TrafficAccessToken: "tt", AccessToken: "at"}) {
			t.Errorf("the resumer was asked %+v", rs.last)
		}
		// Running now: no further resume.
		if code, _ := get(t, addr, "sbxa", nil); code != http.StatusOK || rs.calls.Load() != 1 {
			t.Errorf("a request to the resumed sandbox: %d, %d resumes", code, rs.calls.Load())
		}
	})

	for _, tt := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"not to resume", fmt.Errorf("x: %w", ErrSandboxNotFound), http.StatusBadGateway, msgSandboxNotFound},
		{"denied", fmt.Errorf("x: %w", ErrResumeDenied), http.StatusForbidden, msgResumeDenied},
		{"transitioning", fmt.Errorf("x: %w", ErrTransitioning), http.StatusConflict, msgTransitioning},
		{"team full", fmt.Errorf("x: %w", ErrTooManySandboxes), http.StatusTooManyRequests, msgTooManyRunning},
		{"node trouble", fmt.Errorf("node down"), http.StatusServiceUnavailable, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := &fakeResolver{targets: map[string]Target{}}
			rs := &fakeResumer{res: res, err: tt.err}
			addr := serveProxy(t, newTestProxy(t, Config{Resumer: rs}, lockedResolver{res, &rs.mu}), false)
			code, body := get(t, addr, "sbxb", nil)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, body)
			}
			if tt.msg == "" {
				return
			}
			var b struct {
				SandboxID string `json:"sandboxId"`
				Message   string `json:"message"`
				Code      int    `json:"code"`
			}
			if err := json.Unmarshal([]byte(body), &b); err != nil || b.SandboxID != "sbxb" || b.Message != tt.msg || b.Code != tt.status {
				t.Errorf("body %s (%v)", body, err)
			}
		})
	}

	t.Run("a resume that takes too long", func(t *testing.T) {
		res := &fakeResolver{targets: map[string]Target{}}
		rs := &fakeResumer{res: res, target: Target{Address: "127.0.0.1"}, delay: time.Hour}
		addr := serveProxy(t, newTestProxy(t, Config{Resumer: rs, ResumeTimeout: 200 * time.Millisecond}, lockedResolver{res, &rs.mu}), false)
		start := time.Now()
		code, _ := get(t, addr, "sbxc", nil)
		if code != http.StatusConflict || time.Since(start) > 5*time.Second {
			t.Errorf("status %d after %v, want 409 soon after the timeout", code, time.Since(start))
		}
		deadline := time.Now().Add(5 * time.Second)
		for !rs.ctxDone.Load() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !rs.ctxDone.Load() {
			t.Error("the resume was not bounded by the timeout")
		}
	})

	t.Run("no resumer", func(t *testing.T) {
		addr := serveProxy(t, newTestProxy(t, Config{}, fakeResolver{targets: map[string]Target{}}), false)
		if code, _ := get(t, addr, "sbxd", nil); code != http.StatusBadGateway {
			t.Errorf("status %d, want 502", code)
		}
	})
}

// lockedResolver reads a fakeResolver under the resumer's lock, which writes it.
type lockedResolver struct {
	r  *fakeResolver
	mu *sync.Mutex
}

func (l lockedResolver) ResolveSandbox(ctx context.Context, id string) (Target, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.ResolveSandbox(ctx, id)
}
