// Command probe is the first process of the sandboxes the runtime conformance suite
// starts: a small HTTP server on :8080 that reports and changes its sandbox's state.
// As root it also tries, on request, what an attacker inside would (see attacks).
package main

import (
	"bufio"
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "child" {
		child(os.Args[2])
	}
	var counter atomic.Int64
	go func() {
		for range time.Tick(10 * time.Millisecond) {
			counter.Add(1)
		}
	}()
	var held [][]byte
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, counter.Load())
	})
	mux.HandleFunc("GET /hostname", func(w http.ResponseWriter, r *http.Request) {
		h, _ := os.Hostname()
		fmt.Fprint(w, h)
	})
	mux.HandleFunc("POST /file", func(w http.ResponseWriter, r *http.Request) {
		err := os.WriteFile(r.URL.Query().Get("path"), []byte(r.URL.Query().Get("data")), 0o644)
		reply(w, err)
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("GET /stat", func(w http.ResponseWriter, r *http.Request) {
		var st unix.Stat_t
		if err := unix.Lstat(r.URL.Query().Get("path"), &st); err != nil {
			reply(w, err)
			return
		}
		fmt.Fprintf(w, "%d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
	})
	mux.HandleFunc("POST /chown", func(w http.ResponseWriter, r *http.Request) {
		uid, _ := strconv.Atoi(r.URL.Query().Get("uid"))
		reply(w, os.Lchown(r.URL.Query().Get("path"), uid, uid))
	})
	mux.HandleFunc("POST /attack", attack)
	mux.HandleFunc("GET /memtotal", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open("/proc/meminfo")
		if err != nil {
			reply(w, err)
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "MemTotal:") {
				fmt.Fprint(w, strings.Fields(sc.Text())[1])
			}
		}
	})
	mux.HandleFunc("POST /alloc", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(i + j)
			}
			held = append(held, b)
		}
		fmt.Fprint(w, len(held))
	})
	mux.HandleFunc("POST /fill", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(r.URL.Query().Get("path"))
		if err != nil {
			reply(w, err)
			return
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		for i := 0; i < 1<<14; i++ {
			if _, err := f.Write(buf); err != nil {
				reply(w, err)
				return
			}
		}
		fmt.Fprint(w, "no error")
	})
	mux.HandleFunc("POST /spin", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("for"))
		n, _ := strconv.Atoi(r.URL.Query().Get("threads"))
		done := make(chan struct{})
		for i := 0; i < n; i++ {
			go func() {
				// Spin until the thread has used d of CPU: on a busy host that
				// takes longer than d, so it gives up after 20 times that.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				giveUp := time.Now().Add(20 * d)
				// The thread may have spun for an earlier request: count from now.
				until := threadCPU() + d
				for threadCPU() < until && time.Now().Before(giveUp) {
				}
				done <- struct{}{}
			}()
		}
		for i := 0; i < n; i++ {
			<-done
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprint(w, "bye")
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
	})
	fmt.Println("probe listening")
	log.Fatal(http.ListenAndServe(":8080", mux))
}

// threadCPU is the CPU time the calling thread has used.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func reply(w http.ResponseWriter, err error) {
	if err != nil {
		fmt.Fprint(w, err.Error())
		return
	}
	fmt.Fprint(w, "ok")
}
