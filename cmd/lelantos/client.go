package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"lelantos.dev/lelantos/internal/client"
)

// apiFlags adds --api-url and --api-key (and, for commands that reach
// sandboxes, --sandbox-url) to a flag set; client() then makes the client
// from them, or from E2B_API_URL, E2B_API_KEY and E2B_SANDBOX_URL (as
// .lelantos/client.env sets them).
type apiFlags struct {
	url, key, sandboxURL string
	// sandbox is set when --sandbox-url was registered.
	sandbox bool
}

// register registers --api-url and --api-key.
func (f *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "api-url", "", "the server's API URL (default $E2B_API_URL)")
	fs.StringVar(&f.key, "api-key", "", "an API key (default $E2B_API_KEY)")
}

// registerSandbox registers the API flags and --sandbox-url.
func (f *apiFlags) registerSandbox(fs *flag.FlagSet) {
	f.register(fs)
	f.sandbox = true
	fs.StringVar(&f.sandboxURL, "sandbox-url", "", "the sandbox proxy's URL (default $E2B_SANDBOX_URL)")
}

// client makes the client from the flags, else the environment.
func (f *apiFlags) client() (*client.Client, error) {
	cfg := client.Config{APIURL: f.url, APIKey: f.key, SandboxURL: f.sandboxURL}
	if cfg.APIURL == "" {
		cfg.APIURL = os.Getenv("E2B_API_URL")
	}
	if cfg.APIKey == "" {
		cfg.APIKey = os.Getenv("E2B_API_KEY")
	}
	if cfg.SandboxURL == "" && f.sandbox {
		cfg.SandboxURL = os.Getenv("E2B_SANDBOX_URL")
	}
	switch {
	case cfg.APIURL == "":
		return nil, errors.New("no API URL: pass --api-url or set E2B_API_URL (. .lelantos/client.env sets it)")
	case cfg.APIKey == "":
		return nil, errors.New("no API key: pass --api-key or set E2B_API_KEY (. .lelantos/client.env sets it)")
	}
	return client.New(cfg)
}

// contextArchive streams the context directory as a gzipped tar, written
// as it is read: the body of POST /templates in its streamed form. Fast
// compression: the archive is made while it is sent.
func contextArchive(contextDir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		gz, err := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		if err == nil {
			err = writeTar(gz, contextDir)
			err = errors.Join(err, gz.Close())
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// writeTar writes the tree at dir as a tar stream: directories, regular
// files and symbolic links, with names relative to dir. Other files
// (sockets, devices) are skipped. The server honours a .dockerignore.
func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case !info.Mode().IsRegular() && !info.IsDir():
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if err != nil {
		return fmt.Errorf("read the build context: %w", err)
	}
	return tw.Close()
}
