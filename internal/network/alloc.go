package network

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// recordVersion is the format version of allocation records.
const recordVersion = 1

// record is the on-disk allocation of one sandbox: <StateDir>/<id>.json.
type record struct {
	Version       int        `json:"version"`
	SandboxID     string     `json:"sandbox_id"`
	Address       netip.Addr `json:"address"`
	Gateway       netip.Addr `json:"gateway"`
	PrefixLen     int        `json:"prefix_len"`
	HostVeth      string     `json:"host_veth"`
	NetNS         string     `json:"netns"`
	AllowInternet bool       `json:"allow_internet"`
	// Egress holds the sandbox's per-destination rules, nil for none.
	Egress *Egress `json:"egress,omitempty"`
}

// pool hands out /30 slots of a subnet. It is not safe for concurrent use.
type pool struct {
	base uint32
	used []bool
	next int
}

func newPool(subnet netip.Prefix) *pool {
	b := subnet.Addr().As4()
	return &pool{
		base: binary.BigEndian.Uint32(b[:]),
		used: make([]bool, 1<<(30-subnet.Bits())),
	}
}

// take returns a free slot, searching round-robin from the last one handed
// out so that a freed address is reused as late as possible.
func (p *pool) take() (int, error) {
	for i := range p.used {
		s := (p.next + i) % len(p.used)
		if !p.used[s] {
			p.used[s] = true
			p.next = (s + 1) % len(p.used)
			return s, nil
		}
	}
	return 0, ErrExhausted
}

func (p *pool) free(slot int) { p.used[slot] = false }

// addrs returns the host-side (gateway) and sandbox addresses of slot.
func (p *pool) addrs(slot int) (gateway, sandbox netip.Addr) {
	v := p.base + uint32(slot)*4
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v+1)
	gateway = netip.AddrFrom4(b)
	binary.BigEndian.PutUint32(b[:], v+2)
	return gateway, netip.AddrFrom4(b)
}

// slotOf maps a sandbox address back to its slot.
func (p *pool) slotOf(sandbox netip.Addr) (int, error) {
	if !sandbox.Is4() {
		return 0, fmt.Errorf("address %s is not IPv4", sandbox)
	}
	b := sandbox.As4()
	off := binary.BigEndian.Uint32(b[:]) - p.base
	if off%4 != 2 || int(off/4) >= len(p.used) {
		return 0, fmt.Errorf("address %s is not a sandbox address of the subnet", sandbox)
	}
	return int(off / 4), nil
}

// linkName derives the veth (and namespace) name of a sandbox: the prefix and
// hex digits of a hash of the ID, 15 characters in all (IFNAMSIZ-1). attempt
// varies the hash when a name is already taken.
func linkName(prefix, sandboxID string, attempt int) string {
	sum := sha256.Sum256([]byte(sandboxID + "\x00" + strconv.Itoa(attempt)))
	return prefix + hex.EncodeToString(sum[:])[:15-len(prefix)]
}

// linkNameRE matches the names linkName produces for prefix.
func linkNameRE(prefix string) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`^%s[0-9a-f]{%d}$`, regexp.QuoteMeta(prefix), 15-len(prefix)))
}

func recordPath(dir, sandboxID string) string {
	return filepath.Join(dir, sandboxID+".json")
}

// writeRecord stores r durably: a synced temporary file renamed over the
// record, then a sync of the directory.
func writeRecord(dir string, r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-"+r.SandboxID+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, recordPath(dir, r.SandboxID))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// removeRecord deletes a record; a missing one is not an error.
func removeRecord(dir, sandboxID string) error {
	err := os.Remove(recordPath(dir, sandboxID))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadRecords reads every record in dir and removes temporary files left by
// an interrupted write.
func loadRecords(dir string) ([]*record, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove stale temporary record %s: %w", name, err)
			}
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read record %s: %w", name, err)
		}
		r := new(record)
		if err := json.Unmarshal(data, r); err != nil {
			return nil, fmt.Errorf("parse record %s: %w", name, err)
		}
		if r.Version != recordVersion || r.SandboxID != id {
			return nil, fmt.Errorf("record %s: version %d, sandbox %q: not a record of this format", name, r.Version, r.SandboxID)
		}
		out = append(out, r)
	}
	return out, nil
}
