package controlplane

import (
	"sync"
	"time"
)

// nodeAddrTTL is how long a replica reuses a node's address and silence as it
// read them, so that the proxy does not read the node's row for every
// request. It is far below NodeLostAfter: a node turns lost on time (its
// silence grows with the clock while cached), and a node that reports again
// to another replica, or moves, is seen within it.
const nodeAddrTTL = time.Second

// nodeAddrs caches what remoteAddress reads of node rows. The zero value is
// ready to use; it is safe for concurrent use.
type nodeAddrs struct {
	mu sync.Mutex
	m  map[string]nodeAddr
}

// nodeAddr is a node's address and silence as read at read.
type nodeAddr struct {
	address string
	silence time.Duration
	read    time.Time
}

// get returns node id's address and its silence now, if read within
// nodeAddrTTL of now.
func (c *nodeAddrs) get(id string, now time.Time) (string, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[id]
	if !ok || now.Sub(a.read) > nodeAddrTTL || now.Before(a.read) {
		return "", 0, false
	}
	return a.address, a.silence + now.Sub(a.read), true
}

// put records node id's address and silence as read at now.
func (c *nodeAddrs) put(id, address string, silence time.Duration, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]nodeAddr{}
	}
	c.m[id] = nodeAddr{address: address, silence: silence, read: now}
}

// forget drops what is cached of node id (it just reported to this replica).
func (c *nodeAddrs) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
