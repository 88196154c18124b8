package network

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Bounds of what the answer book keeps.
const (
	answerMinTTL      = time.Minute
	answerMaxTTL      = time.Hour
	answersPerSandbox = 4096
)

// answerBook remembers, per sandbox, the addresses the DNS forwarder gave it
// for names its domain rules allow, until their TTL (at least answerMinTTL)
// runs out. Only connections to those addresses may take the egress checker's
// kernel path, so that a sandbox cannot make the host open a connection to an
// address it chose before its name is checked. Safe for concurrent use.
type answerBook struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[netip.Addr]*sandboxAnswers
}

// sandboxAnswers are the answers of one sandbox, which id names: an address
// given back to the pool and taken by another sandbox starts a new book.
type sandboxAnswers struct {
	id   string
	byIP map[netip.Addr]answer
}

// answer is one address a name was answered with.
type answer struct {
	name  string
	until time.Time
}

func newAnswerBook() *answerBook {
	return &answerBook{now: time.Now, by: make(map[netip.Addr]*sandboxAnswers)}
}

// note records the A records of resp, the answer to a question for a name the
// rules of pol, the sandbox at src, allow.
func (b *answerBook) note(src netip.Addr, pol sandboxPolicy, resp []byte) {
	if !pol.egress.hasDomains() {
		return
	}
	var p dnsmessage.Parser
	if _, err := p.Start(resp); err != nil {
		return
	}
	q, err := p.Question()
	if err != nil {
		return
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if !pol.egress.allowsName(name) {
		return
	}
	_ = p.SkipAllQuestions()
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.by[src]
	if s == nil || s.id != pol.id {
		s = &sandboxAnswers{id: pol.id, byIP: make(map[netip.Addr]answer)}
		b.by[src] = s
	}
	for {
		h, err := p.AnswerHeader()
		if err != nil {
			return
		}
		if h.Type != dnsmessage.TypeA || h.Class != dnsmessage.ClassINET {
			if p.SkipAnswer() != nil {
				return
			}
			continue
		}
		a, err := p.AResource()
		if err != nil {
			return
		}
		ttl := min(max(time.Duration(h.TTL)*time.Second, answerMinTTL), answerMaxTTL)
		if len(s.byIP) >= answersPerSandbox {
			s.prune(now)
			if len(s.byIP) >= answersPerSandbox {
				return
			}
		}
		s.byIP[netip.AddrFrom4(a.A)] = answer{name: name, until: now.Add(ttl)}
	}
}

// prune forgets the answers whose time ran out.
func (s *sandboxAnswers) prune(now time.Time) {
	for ip, a := range s.byIP {
		if !now.Before(a.until) {
			delete(s.byIP, ip)
		}
	}
}

// answered reports whether the sandbox at src, with the rules of pol, was
// given dst for a name those rules still allow, and the answer still holds.
func (b *answerBook) answered(src netip.Addr, pol sandboxPolicy, dst netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.by[src]
	if s == nil || s.id != pol.id {
		return false
	}
	a, ok := s.byIP[dst]
	return ok && b.now().Before(a.until) && pol.egress.allowsName(a.name)
}

// forget drops the answers of the sandbox at src.
func (b *answerBook) forget(src netip.Addr) {
	b.mu.Lock()
	delete(b.by, src)
	b.mu.Unlock()
}
