// Command benchfs is the baseline of the transfer benchmarks: a static file server on
// loopback that moves files the way envd's /files does, without a sandbox or a proxy
// in the way. GET /files?path=P serves the file named base(P) from -dir; POST or PUT
// /files?path=P streams the request body into that file.
//
//	benchfs -dir DIR [-listen 127.0.0.1:0] [-addr-file FILE]
//
// It prints its address (host:port) on stdout, and into -addr-file when given, once
// it listens, and serves until killed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	dir := flag.String("dir", "", "directory holding the served and uploaded files")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("addr-file", "", "file to write the listening address into")
	flag.Parse()
	if *dir == "" {
		log.Fatal("benchfs: -dir is required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("benchfs: %v", err)
	}
	addr := ln.Addr().String()
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(addr+"\n"), 0o600); err != nil {
			log.Fatalf("benchfs: %v", err)
		}
	}
	fmt.Println(addr)
	srv := &http.Server{Handler: handler(*dir), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// handler serves the /files route over dir.
func handler(dir string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/files", func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Query().Get("path"))
		if name == "." || name == "/" || name == ".." {
			http.Error(w, "path: want a file name", http.StatusBadRequest)
			return
		}
		p := filepath.Join(dir, name)
		switch r.Method {
		case http.MethodGet:
			http.ServeFile(w, r, p)
		case http.MethodPost, http.MethodPut:
			if err := receive(p, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `[{"path":%q,"name":%q,"type":"file"}]`, p, name)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	return mux
}

// receive streams body into the file at p.
func receive(p string, body io.Reader) error {
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("receive %s: %w", p, err)
	}
	_, cerr := io.Copy(f, body)
	if err := errors.Join(cerr, f.Close()); err != nil {
		return fmt.Errorf("receive %s: %w", p, err)
	}
	return nil
}
