// Package image reads container images: on disk, OCI image layouts and the
// directories of unpacked `docker save` archives, and unpacks their layers into a
// tree. Layouts come from API users, so every file of one is read through
// internal/saferoot: a layout whose index.json or blobs are symbolic links to host
// files is refused, not followed, and every read is size-limited.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"

	"lelantos.dev/lelantos/internal/saferoot"
)

// Image is an image on disk, ready to unpack.
type Image struct {
	// Digest identifies the image: its manifest's digest, or for a docker save
	// archive its configuration's.
	Digest string
	Layers []Layer
	Config Config
}

// Layer is one layer blob of an image.
type Layer struct {
	// Name is the blob's path in the layout.
	Name string
	// Digest is the blob's digest, checked while unpacking; empty when the format
	// gives none.
	Digest string
}

// Config is the part of an image's configuration a template keeps.
type Config struct {
	Env          []string
	User         string
	WorkingDir   string
	Cmd          []string
	Entrypoint   []string
	Labels       map[string]string
	ExposedPorts []string // sorted
	// Shell is the image's SHELL, StopSignal its STOPSIGNAL, Volumes its
	// VOLUMEs (sorted) and Healthcheck its HEALTHCHECK test.
	Shell       []string
	StopSignal  string
	Volumes     []string
	Healthcheck []string
}

// maxJSON bounds index.json, manifests and configurations.
const maxJSON = 8 << 20

// Media types of image indexes: a manifest pointing at one is followed.
const (
	mediaOCIIndex   = "application/vnd.oci.image.index.v1+json"
	mediaDockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Platform  *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

type index struct {
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	Config descriptor   `json:"config"`
	Layers []descriptor `json:"layers"`
}

// configFile is the part of a configuration blob the builder uses.
type configFile struct {
	Config struct {
		Env          []string            `json:"Env"`
		User         string              `json:"User"`
		WorkingDir   string              `json:"WorkingDir"`
		Cmd          []string            `json:"Cmd"`
		Entrypoint   []string            `json:"Entrypoint"`
		Labels       map[string]string   `json:"Labels"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Shell        []string            `json:"Shell"`
		StopSignal   string              `json:"StopSignal"`
		Volumes      map[string]struct{} `json:"Volumes"`
		Healthcheck  *struct {
			Test []string `json:"Test"`
		} `json:"Healthcheck"`
	} `json:"config"`
}

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// Read reads the OCI image layout, or the unpacked docker save archive, at the top
// of layout.
func Read(layout *saferoot.Root) (*Image, error) {
	if _, err := layout.Lstat("index.json"); err == nil {
		return readOCI(layout)
	}
	if _, err := layout.Lstat("manifest.json"); err == nil {
		return readDocker(layout)
	}
	return nil, errors.New("neither an OCI image layout (index.json) nor a docker save archive (manifest.json)")
}

func readOCI(layout *saferoot.Root) (*Image, error) {
	if _, err := layout.Lstat("oci-layout"); err == nil {
		var v struct {
			Version string `json:"imageLayoutVersion"`
		}
		if err := readJSON(layout, "oci-layout", "", &v); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(v.Version, "1.") {
			return nil, fmt.Errorf("oci-layout: image layout version %q is not 1.x", v.Version)
		}
	}
	var idx index
	if err := readJSON(layout, "index.json", "", &idx); err != nil {
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
			idx = index{}
			if err := readBlobJSON(layout, d.Digest, &idx); err != nil {
				return nil, err
			}
			continue
		}
		var m manifest
		if err := readBlobJSON(layout, d.Digest, &m); err != nil {
			return nil, err
		}
		var cf configFile
		if err := readBlobJSON(layout, m.Config.Digest, &cf); err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
		img := &Image{Digest: d.Digest, Config: configOf(cf)}
		for _, l := range m.Layers {
			if strings.Contains(l.MediaType, "zstd") {
				return nil, fmt.Errorf("layer %s is zstd-compressed: not supported (use gzip)", l.Digest)
			}
			name, err := blobName(l.Digest)
			if err != nil {
				return nil, err
			}
			img.Layers = append(img.Layers, Layer{Name: name, Digest: l.Digest})
		}
		return img, nil
	}
}

// pickManifest chooses this host's platform, else the only or first entry without
// one.
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

func readDocker(layout *saferoot.Root) (*Image, error) {
	var entries []struct {
		Config string   `json:"Config"`
		Layers []string `json:"Layers"`
	}
	if err := readJSON(layout, "manifest.json", "", &entries); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("manifest.json: no image in it")
	}
	e := entries[0]
	data, err := layout.ReadFile(e.Config, maxJSON)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	var cf configFile
	if err := json.Unmarshal(data, &cf); err != nil {
		return nil, fmt.Errorf("image config %s: %w", e.Config, err)
	}
	sum := sha256.Sum256(data)
	img := &Image{Digest: "sha256:" + hex.EncodeToString(sum[:]), Config: configOf(cf)}
	for _, l := range e.Layers {
		img.Layers = append(img.Layers, Layer{Name: saferoot.Clean(l)})
	}
	return img, nil
}

func configOf(cf configFile) Config {
	c := cf.Config
	out := Config{Env: c.Env, User: c.User, WorkingDir: c.WorkingDir, Cmd: c.Cmd, Entrypoint: c.Entrypoint, Labels: c.Labels,
		Shell: c.Shell, StopSignal: c.StopSignal}
	for p := range c.ExposedPorts {
		out.ExposedPorts = append(out.ExposedPorts, p)
	}
	slices.Sort(out.ExposedPorts)
	for v := range c.Volumes {
		out.Volumes = append(out.Volumes, v)
	}
	slices.Sort(out.Volumes)
	if c.Healthcheck != nil {
		out.Healthcheck = c.Healthcheck.Test
	}
	return out
}

func blobName(digest string) (string, error) {
	if !digestRE.MatchString(digest) {
		return "", fmt.Errorf("unsupported digest %q", digest)
	}
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:"), nil
}

// readBlobJSON decodes the blob with digest, checking the digest.
func readBlobJSON(layout *saferoot.Root, digest string, v any) error {
	name, err := blobName(digest)
	if err != nil {
		return err
	}
	return readJSON(layout, name, digest, v)
}

// readJSON decodes the file name of the layout, checking its digest when one is
// given.
func readJSON(layout *saferoot.Root, name, digest string, v any) error {
	data, err := layout.ReadFile(name, maxJSON)
	if err != nil {
		return err
	}
	if digest != "" {
		if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != digest {
			return fmt.Errorf("blob %s does not match its digest", digest)
		}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
