package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// benchSize is the body moved by one benchmark operation.
const benchSize = 64 << 20

// benchBackend serves GET /data (benchSize bytes with a Content-Length),
// PUT /data (drains the body) and GET /small (a few bytes).
func benchBackend(b *testing.B) int {
	block := make([]byte, 1<<20)
	return backend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/small":
			io.WriteString(w, "ok")
		case r.Method == http.MethodGet:
			w.Header().Set("Content-Length", strconv.Itoa(benchSize))
			for sent := 0; sent < benchSize; sent += len(block) {
				if _, err := w.Write(block); err != nil {
					return
				}
			}
		default:
			io.CopyBuffer(onlyWriter{io.Discard}, onlyReader{r.Body}, make([]byte, 256<<10))
			w.WriteHeader(http.StatusNoContent)
		}
	}))
}

// benchTargets returns, for a backend port, the client and base URL of each
// way to reach it: directly, through the proxy over HTTP/1.1, and through
// the proxy over HTTPS with HTTP/2.
func benchTargets(b *testing.B, port int) map[string]func() (*http.Client, string) {
	res := fakeResolver{targets: map[string]Target{"abc": {Address: "127.0.0.1"}}}
	return map[string]func() (*http.Client, string){
		"direct": func() (*http.Client, string) {
			return proxyClient(b, fmt.Sprintf("127.0.0.1:%d", port), nil, false), fmt.Sprintf("http://127.0.0.1:%d", port)
		},
		"http1": func() (*http.Client, string) {
			addr := serveProxy(b, newTestProxy(b, Config{}, res), false)
			return proxyClient(b, addr, nil, false), fmt.Sprintf("http://%d-abc.localhost", port)
		},
		"https-h2": func() (*http.Client, string) {
			addr, ca := tlsProxy(b, "sandbox.test", b.TempDir(), res)
			return proxyClient(b, addr, ca, true), fmt.Sprintf("https://%d-abc.sandbox.test", port)
		},
	}
}

func benchDownload(b *testing.B, via string) {
	client, base := benchTargets(b, benchBackend(b))[via]()
	buf := make([]byte, 256<<10)
	b.SetBytes(benchSize)
	for b.Loop() {
		resp, err := client.Get(base + "/data")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(onlyWriter{io.Discard}, onlyReader{resp.Body}, buf)
		resp.Body.Close()
		if err != nil || n != benchSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
}

func benchUpload(b *testing.B, via string) {
	client, base := benchTargets(b, benchBackend(b))[via]()
	b.SetBytes(benchSize)
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPut, base+"/data", onlyReader{newPatternFast(benchSize)})
		req.ContentLength = benchSize
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// newPatternFast is a patternReader over a shared zeroed block: the upload
// benchmarks measure transport, not data generation.
func newPatternFast(size int64) *patternReader {
	return &patternReader{block: make([]byte, patternBlock), size: size}
}

// BenchmarkProxyDownload: MB/s of a 64 MiB download through the proxy.
func BenchmarkProxyDownload(b *testing.B) {
	for _, via := range []string{"http1", "https-h2"} {
		b.Run(via, func(b *testing.B) { benchDownload(b, via) })
	}
}

// BenchmarkDirectDownload is the baseline: the same download without proxy.
func BenchmarkDirectDownload(b *testing.B) { benchDownload(b, "direct") }

// BenchmarkProxyUpload: MB/s of a 64 MiB upload through the proxy.
func BenchmarkProxyUpload(b *testing.B) {
	for _, via := range []string{"http1", "https-h2"} {
		b.Run(via, func(b *testing.B) { benchUpload(b, via) })
	}
}

// BenchmarkDirectUpload is the baseline: the same upload without proxy.
func BenchmarkDirectUpload(b *testing.B) { benchUpload(b, "direct") }

// BenchmarkProxyRequest: small requests through the proxy (latency and
// allocations per request), against BenchmarkDirectRequest.
func BenchmarkProxyRequest(b *testing.B) { benchSmall(b, "http1") }

// BenchmarkDirectRequest is the baseline of BenchmarkProxyRequest.
func BenchmarkDirectRequest(b *testing.B) { benchSmall(b, "direct") }

func benchSmall(b *testing.B, via string) {
	client, base := benchTargets(b, benchBackend(b))[via]()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get(base + "/small")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
