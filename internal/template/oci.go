package template

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
)

// Media types of image indexes: a manifest pointing at one is followed.
const (
	mediaOCIIndex   = "application/vnd.oci.image.index.v1+json"
	mediaDockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// image is an image on disk, ready to unpack.
type image struct {
	digest string // of its manifest (or config, for a docker save archive)
	layers []imageLayer
	config imageConfig
}

// imageLayer is one layer blob; digest is empty when the format does not give one.
type imageLayer struct {
	path, digest string
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Platform  *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

type ociIndex struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
}

type ociManifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

// imageConfigFile is the part of an image's configuration blob the builder uses.
type imageConfigFile struct {
	Config struct {
		Env          []string            `json:"Env"`
		User         string              `json:"User"`
		WorkingDir   string              `json:"WorkingDir"`
		Cmd          []string            `json:"Cmd"`
		Entrypoint   []string            `json:"Entrypoint"`
		Labels       map[string]string   `json:"Labels"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	} `json:"config"`
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// readImage reads an OCI image layout directory, or the directory of an unpacked
// `docker save` archive.
func readImage(dir string) (*image, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		return readOCILayout(dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return readDockerArchive(dir)
	}
	return nil, errors.New("neither an OCI image layout (index.json) nor a docker save archive (manifest.json)")
}

func readOCILayout(dir string) (*image, error) {
	var idx ociIndex
	if err := readBlobJSON(dir, "", filepath.Join(dir, "index.json"), &idx); err != nil {
		return nil, err
	}
	for depth := 0; ; depth++ {
		d, err := pickManifest(idx.Manifests)
		if err != nil {
			return nil, err
		}
		if depth > 4 {
			return nil, errors.New("image indexes nest too deep")
		}
		if d.MediaType == mediaOCIIndex || d.MediaType == mediaDockerList {
			idx = ociIndex{}
			if err := readBlobJSON(dir, d.Digest, "", &idx); err != nil {
				return nil, err
			}
			continue
		}
		var m ociManifest
		if err := readBlobJSON(dir, d.Digest, "", &m); err != nil {
			return nil, err
		}
		img := &image{digest: d.Digest}
		var cf imageConfigFile
		if err := readBlobJSON(dir, m.Config.Digest, "", &cf); err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
		img.config = configOf(cf)
		for _, l := range m.Layers {
			if strings.Contains(l.MediaType, "zstd") {
				return nil, fmt.Errorf("layer %s is zstd-compressed: not supported (use gzip)", l.Digest)
			}
			p, err := blobPath(dir, l.Digest)
			if err != nil {
				return nil, err
			}
			img.layers = append(img.layers, imageLayer{path: p, digest: l.Digest})
		}
		return img, nil
	}
}

// pickManifest chooses this host's platform, else the only or first entry.
func pickManifest(ds []descriptor) (descriptor, error) {
	if len(ds) == 0 {
		return descriptor{}, errors.New("the image index lists no manifests")
	}
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == goruntime.GOARCH {
			return d, nil
		}
	}
	for _, d := range ds {
		if d.Platform == nil || d.Platform.Architecture == "" {
			return d, nil
		}
	}
	return descriptor{}, fmt.Errorf("the image has no linux/%s variant", goruntime.GOARCH)
}

func readDockerArchive(dir string) (*image, error) {
	var entries []struct {
		Config string   `json:"Config"`
		Layers []string `json:"Layers"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &entries); err != nil || len(entries) == 0 {
		return nil, fmt.Errorf("manifest.json: no image in it (%v)", err)
	}
	e := entries[0]
	cfgPath, err := resolveIn(dir, e.Config, true)
	if err != nil {
		return nil, err
	}
	cfgData, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	var cf imageConfigFile
	if err := json.Unmarshal(cfgData, &cf); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	sum := sha256.Sum256(cfgData)
	img := &image{digest: "sha256:" + hex.EncodeToString(sum[:]), config: configOf(cf)}
	for _, l := range e.Layers {
		p, err := resolveIn(dir, l, true)
		if err != nil {
			return nil, err
		}
		img.layers = append(img.layers, imageLayer{path: p})
	}
	return img, nil
}

func configOf(cf imageConfigFile) imageConfig {
	c := cf.Config
	ic := imageConfig{Env: c.Env, User: c.User, Workdir: c.WorkingDir, Cmd: c.Cmd, Entrypoint: c.Entrypoint, Labels: c.Labels}
	for p := range c.ExposedPorts {
		ic.Ports = append(ic.Ports, p)
	}
	slices.Sort(ic.Ports)
	return ic
}

func blobPath(dir, digest string) (string, error) {
	if !digestRE.MatchString(digest) {
		return "", fmt.Errorf("unsupported digest %q", digest)
	}
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")), nil
}

// readBlobJSON decodes the blob with digest (checked), or the file p when digest is "".
func readBlobJSON(dir, digest, p string, v any) error {
	if digest != "" {
		var err error
		if p, err = blobPath(dir, digest); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if digest != "" {
		if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != digest {
			return fmt.Errorf("blob %s does not match its digest", digest)
		}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(p), err)
	}
	return nil
}

// verifier hashes what is read through it, to check a layer against its digest.
type verifier struct {
	r    io.Reader
	want string
	h    hash.Hash
}

// Read implements io.Reader.
func (v *verifier) Read(p []byte) (int, error) {
	if v.h == nil {
		v.h = sha256.New()
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	return n, err
}

// check drains the rest of the stream and compares the digest.
func (v *verifier) check() error {
	if v.want == "" {
		return nil
	}
	if _, err := io.Copy(io.Discard, v); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.want {
		return fmt.Errorf("layer does not match its digest %s", v.want)
	}
	return nil
}

// fileDigest is the sha256 digest of a file.
func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
