package proxy

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"testing"
)

// patternReader yields size bytes: a random 1 MiB block repeated, each copy
// stamped with its index so that lost, repeated or reordered blocks change
// the checksum.
type patternReader struct {
	block []byte
	size  int64
	off   int64
}

const patternBlock = 1 << 20

func newPattern(size int64) *patternReader {
	block := make([]byte, patternBlock)
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	r.Read(block)
	return &patternReader{block: block, size: size}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	idx, in := p.off/patternBlock, int(p.off%patternBlock)
	if in == 0 {
		binary.LittleEndian.PutUint64(p.block, uint64(idx))
	}
	n := copy(b, p.block[in:])
	if rem := p.size - p.off; int64(n) > rem {
		n = int(rem)
	}
	p.off += int64(n)
	return n, nil
}

func newCRC() hash.Hash32 { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }

// patternSum is the checksum of newPattern(size).
func patternSum(size int64) uint32 {
	h := newCRC()
	io.Copy(h, newPattern(size))
	return h.Sum32()
}

// TestLargeTransfer moves 256 MiB each way through the proxy with a
// checksum, and checks that nobody in this process (client, proxy, sandbox)
// allocated anywhere near the transfer's size: the bodies stream.
func TestLargeTransfer(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	want := patternSum(size)
	port := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			io.CopyBuffer(onlyWriter{w}, newPattern(size), make([]byte, 256<<10))
		case http.MethodPut:
			h := newCRC()
			n, err := io.CopyBuffer(h, onlyReader{r.Body}, make([]byte, 256<<10))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d %08x", n, h.Sum32())
		}
	}))
	res := fakeResolver{targets: map[string]Target{"abc": {Address: "127.0.0.1"}}}
	addr := serveProxy(t, newTestProxy(t, Config{}, res), false)
	client := proxyClient(t, addr, nil, false)
	url := fmt.Sprintf("http://%d-abc.localhost/data", port)

	tests := []struct {
		name    string
		method  string
		chunked bool
	}{
		{"download", http.MethodGet, false},
		{"upload with length", http.MethodPut, false},
		{"upload chunked", http.MethodPut, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var body io.Reader
			if tt.method == http.MethodPut {
				body = onlyReader{newPattern(size)}
			}
			req, _ := http.NewRequest(tt.method, url, body)
			if tt.method == http.MethodPut && !tt.chunked {
				req.ContentLength = size
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, readAll(t, resp))
			}
			var got string
			if tt.method == http.MethodGet {
				h := newCRC()
				n, err := io.CopyBuffer(h, onlyReader{resp.Body}, make([]byte, 256<<10))
				if err != nil {
					t.Fatal(err)
				}
				got = fmt.Sprintf("%d %08x", n, h.Sum32())
			} else {
				got = readAll(t, resp)
			}
			if want := fmt.Sprintf("%d %08x", size, want); got != want {
				t.Fatalf("received %q, want %q", got, want)
			}
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(size/4) {
				t.Errorf("allocated %d MiB to move %d MiB: a body was buffered", alloc>>20, size>>20)
			}
		})
	}
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo so that copies use the
// given buffers and no shortcut.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
