package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// apiClient calls a Lelantos server's HTTP API with an API key.
type apiClient struct {
	url, key string
	hc       *http.Client
}

// apiFlags adds --api-url and --api-key to fs; client() then makes the client
// from them, or from E2B_API_URL and E2B_API_KEY (as .lelantos/client.env
// sets them).
type apiFlags struct{ url, key string }

func (f *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "api-url", "", "the server's API URL (default $E2B_API_URL)")
	fs.StringVar(&f.key, "api-key", "", "an API key (default $E2B_API_KEY)")
}

func (f *apiFlags) client() (*apiClient, error) {
	url, key := f.url, f.key
	if url == "" {
		url = os.Getenv("E2B_API_URL")
	}
	if key == "" {
		key = os.Getenv("E2B_API_KEY")
	}
	switch {
	case url == "":
		return nil, errors.New("no API URL: pass --api-url or set E2B_API_URL (. .lelantos/client.env sets it)")
	case key == "":
		return nil, errors.New("no API key: pass --api-key or set E2B_API_KEY (. .lelantos/client.env sets it)")
	case !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://"):
		return nil, fmt.Errorf("API URL %q: must start with http:// or https://", url)
	}
	return &apiClient{url: strings.TrimRight(url, "/"), key: key, hc: &http.Client{}}, nil
}

// do sends a request and decodes a 2xx JSON answer into out (when not nil);
// another status is an error with the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			return fmt.Errorf("%d: %s", resp.StatusCode, e.Message)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// buildBody streams the body of POST /templates: fields, then the context
// directory as base64 of a gzipped tar, written as it is read.
func buildBody(fields map[string]any, contextDir string) (io.ReadCloser, error) {
	head, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		w := func() error {
			if _, err := pw.Write(append(head[:len(head)-1], `,"context":"`...)); err != nil {
				return err
			}
			b64 := base64.NewEncoder(base64.StdEncoding, pw)
			gz := gzip.NewWriter(b64)
			if err := writeTar(gz, contextDir); err != nil {
				return err
			}
			if err := errors.Join(gz.Close(), b64.Close()); err != nil {
				return err
			}
			_, err := io.WriteString(pw, `"}`)
			return err
		}()
		pw.CloseWithError(w)
	}()
	return pr, nil
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
