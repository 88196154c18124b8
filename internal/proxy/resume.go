package proxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Errors a Resumer reports, possibly wrapped, besides ErrSandboxNotFound (not a
// sandbox traffic may resume: the usual 502).
var (
	// ErrResumeDenied: the request's credentials do not allow resuming the
	// sandbox. Answered with 403.
	ErrResumeDenied = errors.New("resume denied")
	// ErrTransitioning: the sandbox is still changing state (pausing, say). 409.
	ErrTransitioning = errors.New("sandbox is transitioning")
	// ErrTooManySandboxes: the sandbox's team has no room for it to run. 429.
	ErrTooManySandboxes = errors.New("too many sandboxes")
)

// DefaultResumeTimeout bounds how long a request waits for the sandbox it
// resumes, unless Config.ResumeTimeout says otherwise.
const DefaultResumeTimeout = time.Minute

// ResumeRequest is a request for a sandbox the Resolver could not route, as the
// proxy hands it to a Resumer.
type ResumeRequest struct {
	SandboxID string
	Port      int
	// TrafficAccessToken and AccessToken are the request's
	// e2b-traffic-access-token and X-Access-Token headers.
	TrafficAccessToken, AccessToken string
}

// Resumer resumes a paused sandbox that traffic reached, if its settings and the
// request's credentials allow it.
type Resumer interface {
	// ResumeForTraffic resumes the sandbox (or finds it running) and returns
	// where it runs. Errors wrap ErrSandboxNotFound, ErrResumeDenied,
	// ErrTransitioning or ErrTooManySandboxes; any other is a 503.
	ResumeForTraffic(ctx context.Context, req ResumeRequest) (Target, error)
}

// Messages of the answers about resumes, as E2B's proxy words them.
const (
	msgResumeDenied   = "This sandbox can't be resumed with the credentials provided. Check your access token and try again."
	msgTransitioning  = "The sandbox is still transitioning. Try again in a moment."
	msgTooManyRunning = "The sandbox cannot be resumed: its team has reached the limit of sandboxes running at once."
)

// flight is one resume in progress; its waiters read target and err once done
// is closed.
type flight struct {
	done   chan struct{}
	target Target
	err    error
}

// resumes runs at most one resume per sandbox and set of credentials at a
// time: concurrent requests wait for the same one.
type resumes struct {
	mu      sync.Mutex
	flights map[string]*flight
}

// resume asks the Resumer to resume the sandbox of rt for request r, joining a
// resume of the same sandbox with the same credentials that is under way. The
// resume itself is bounded by the resume timeout, not by the request: a client
// that goes away does not abort it for the others. The request waits at most
// that long too.
func (p *Proxy) resume(r *http.Request, rt route) (Target, error) {
	req := ResumeRequest{SandboxID: rt.sandboxID, Port: rt.port,
		TrafficAccessToken: r.Header.Get(HeaderTrafficAccessToken), AccessToken: r.Header.Get("X-Access-Token")}
	key := req.SandboxID + "\x00" + strconv.Itoa(req.Port) + "\x00" + req.TrafficAccessToken + "\x00" + req.AccessToken
	p.resuming.mu.Lock()
	f := p.resuming.flights[key]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		if p.resuming.flights == nil {
			p.resuming.flights = map[string]*flight{}
		}
		p.resuming.flights[key] = f
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.resumeTimeout)
			defer cancel()
			f.target, f.err = p.resumer.ResumeForTraffic(ctx, req)
			p.resuming.mu.Lock()
			delete(p.resuming.flights, key)
			p.resuming.mu.Unlock()
			close(f.done)
		}()
	}
	p.resuming.mu.Unlock()
	wait := time.NewTimer(p.resumeTimeout)
	defer wait.Stop()
	select {
	case <-f.done:
		return f.target, f.err
	case <-r.Context().Done():
		return Target{}, r.Context().Err()
	case <-wait.C:
		return Target{}, ErrTransitioning
	}
}

// writeResumeError answers the errors of a resume that are not the usual ones;
// it reports whether it answered.
func writeResumeError(w http.ResponseWriter, sandboxID string, err error) bool {
	var status int
	var msg string
	switch {
	case errors.Is(err, ErrResumeDenied):
		status, msg = http.StatusForbidden, msgResumeDenied
	case errors.Is(err, ErrTransitioning):
		status, msg = http.StatusConflict, msgTransitioning
	case errors.Is(err, ErrTooManySandboxes):
		status, msg = http.StatusTooManyRequests, msgTooManyRunning
	default:
		return false
	}
	writeJSON(w, status, sandboxNotFound{SandboxID: sandboxID, Message: msg, Code: status})
	return true
}
