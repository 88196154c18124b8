// Command ociarchive makes container images without a container engine or a
// registry: `layer` writes a directory tree as a gzipped layer placed under
// a path, and `image` stacks such layers into an image archive (the format
// of `docker save`, which `ctr images import`, `docker load` and registry
// tools take) under one reference. scripts/build-image.sh uses it to build
// Lelantos' own image for Kubernetes.
//
//	ociarchive layer --out L.tar.gz --at /opt/x DIR
//	ociarchive image --out IMG.tar --ref NAME:TAG [--entrypoint P]... [--env K=V]... L.tar.gz...
package main

import (
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ociarchive:", err)
		os.Exit(1)
	}
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("a subcommand is required: layer or image")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	out := fs.String("out", "", "file to write")
	switch args[0] {
	case "layer":
		at := fs.String("at", "/", "absolute path in the image where DIR's contents go")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *out == "" || fs.NArg() != 1 || !strings.HasPrefix(*at, "/") {
			return errors.New("usage: ociarchive layer --out L.tar.gz [--at /PATH] DIR")
		}
		return writeLayerFile(*out, fs.Arg(0), *at)
	case "image":
		ref := fs.String("ref", "", "the image's reference, NAME:TAG")
		var entrypoint, env list
		fs.Var(&entrypoint, "entrypoint", "the entrypoint's words, one per flag")
		fs.Var(&env, "env", "an environment variable, KEY=VALUE (repeat)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *out == "" || *ref == "" || fs.NArg() == 0 {
			return errors.New("usage: ociarchive image --out IMG.tar --ref NAME:TAG [--entrypoint W]... [--env K=V]... LAYER.tar.gz...")
		}
		return writeImage(*out, *ref, entrypoint, env, fs.Args())
	}
	return fmt.Errorf("unknown subcommand %q: want layer or image", args[0])
}

// writeLayerFile writes dir as a gzipped layer at path at into out, through
// a temporary file renamed into place.
func writeLayerFile(out, dir, at string) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write layer %s: %w", out, err)
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	werr := writeLayer(zw, dir, at)
	if err := errors.Join(werr, zw.Close(), f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write layer %s from %s: %w", out, dir, err)
	}
	return os.Rename(tmp, out)
}

// writeImage stacks layers (gzipped tars, first at the bottom) into an
// image named ref, and writes it as an archive to out.
func writeImage(out, ref string, entrypoint, env []string, layers []string) error {
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("--ref %q: %w", ref, err)
	}
	var ls []v1.Layer
	for _, p := range layers {
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			return fmt.Errorf("layer %s: %w", p, err)
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return fmt.Errorf("stack the layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint, cf.Config.Env = entrypoint, env
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fmt.Errorf("configure the image: %w", err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write image %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}
