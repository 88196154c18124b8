package template_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"lelantos.dev/lelantos/internal/engine"
	"lelantos.dev/lelantos/internal/template"
	"lelantos.dev/lelantos/internal/template/image"
)

// staticKeychain gives one registry's credentials, as the operator's docker
// configuration would.
type staticKeychain struct {
	registry   string
	user, pass string
}

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != k.registry {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
}

// TestRegistryPull: FROM an image in a registry unpacks its layers (with their
// whiteouts), takes its configuration as the template's defaults, caches each
// layer by the chain of digests, so that a rebuild pulls nothing and another
// image sharing a layer reuses it.
func TestRegistryPull(t *testing.T) {
	reg := startRegistry(t, false)
	b, _ := newStoreBuilderWith(t, func(o *template.BuilderOptions) {
		o.Registries = image.RemoteOptions{PrivateRegistries: []string{reg.addr}}
	})
	ctx := context.Background()
	base := makeTar(t, false,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/os-release", body: "ID=test\n"},
		tarEntry{name: "opt/old.txt", body: "gone\n"})
	app := makeTar(t, true,
		tarEntry{name: "opt/.wh.old.txt"},
		tarEntry{name: "opt/app/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "opt/app/run.sh", body: "#!/bin/sh\necho run\n", mode: 0o755})
	cfg := v1.Config{Env: []string{"PATH=/usr/bin:/bin", "APP_MODE=image"}, User: "1000", WorkingDir: "/opt/app",
		Cmd: []string{"/opt/app/run.sh"}, Labels: map[string]string{"org.example": "yes"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}}}
	ref := reg.push(t, "team/app:v1", imageOf(t, cfg, base, app))

	var log syncBuffer
	res, err := b.Build(ctx, template.BuildRequest{Name: "pulled", Dockerfile: "FROM " + ref + "\nENV EXTRA=1\n"}, &log)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	m := res.Metadata
	if res.Ran != 2 || m.Env["APP_MODE"] != "image" || m.Env["EXTRA"] != "1" || m.DefaultWorkdir != "/opt/app" ||
		m.DefaultUser != "1000" || m.Labels["org.example"] != "yes" || !slices.Equal(m.Cmd, []string{"/opt/app/run.sh"}) ||
		!slices.Equal(m.ExposedPorts, []string{"8080/tcp"}) || m.StartCmd != "" {
		t.Errorf("result %+v, metadata %+v\n%s", res, m, log.String())
	}
	if data, err := os.ReadFile(filepath.Join(m.Rootfs, "opt/app/run.sh")); err != nil || string(data) != "#!/bin/sh\necho run\n" {
		t.Errorf("run.sh: %q %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(m.Rootfs, "opt/old.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the whiteout did not remove opt/old.txt: %v", err)
	}

	// A rebuild reads the manifest only.
	log = syncBuffer{}
	res, err = b.Build(ctx, template.BuildRequest{Name: "pulled", Dockerfile: "FROM " + ref + "\nENV EXTRA=1\n"}, &log)
	if err != nil || res.Ran != 0 || res.CacheHits != 2 {
		t.Fatalf("rebuild: %+v %v\n%s", res, err, log.String())
	}
	// Another template of another image sharing the first layer.
	other := reg.push(t, "team/other:latest", imageOf(t, v1.Config{}, base, makeTar(t, false, tarEntry{name: "other.txt", body: "x"})))
	log = syncBuffer{}
	res, err = b.Build(ctx, template.BuildRequest{Name: "other", Dockerfile: "FROM " + other + "\n"}, &log)
	if err != nil || res.Ran != 1 || res.CacheHits != 1 {
		t.Fatalf("build sharing a layer: %+v %v\n%s", res, err, log.String())
	}

	// Missing images and tags are build errors naming the image.
	for _, df := range []string{"FROM " + reg.addr + "/team/app:nope\n", "FROM " + reg.addr + "/team/none\n"} {
		_, err := b.Build(ctx, template.BuildRequest{Name: "missing", Dockerfile: df}, &log)
		if !errors.Is(err, template.ErrRegistry) || !strings.Contains(err.Error(), reg.addr+"/team/") {
			t.Errorf("%s: %v, want ErrRegistry naming the image", df, err)
		}
	}
}

// TestRegistryAuth: an authenticated registry serves the image with the step
// form's credentials or the operator's keychain, and refuses a bad password
// with an error that says so.
func TestRegistryAuth(t *testing.T) {
	reg := startRegistry(t, true)
	ctx := context.Background()
	ref := reg.push(t, "private/app:1", imageOf(t, v1.Config{Env: []string{"SECRET_IMAGE=1"}},
		makeTar(t, true, tarEntry{name: "marker", body: "private\n"})))
	b, _ := newStoreBuilderWith(t, func(o *template.BuilderOptions) {
		o.Registries = image.RemoteOptions{PrivateRegistries: []string{reg.addr}}
	})
	var log syncBuffer
	if _, err := b.Build(ctx, template.BuildRequest{Name: "anon", Dockerfile: "FROM " + ref + "\n"}, &log); !errors.Is(err, template.ErrRegistry) ||
		!strings.Contains(err.Error(), "the registry refused the pull (401)") {
		t.Errorf("an anonymous pull: %v, want a refusal naming 401", err)
	}
	bad := &template.Spec{FromImage: ref, Registry: &template.RegistryAuth{Username: reg.user, Password: "wrong"}}
	if _, err := b.Build(ctx, template.BuildRequest{Name: "bad", Spec: bad}, &log); !errors.Is(err, template.ErrRegistry) ||
		!strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("a bad password: %v, want a refusal", err)
	}
	good := &template.Spec{FromImage: ref, Registry: &template.RegistryAuth{Username: reg.user, Password: reg.pass}}
	res, err := b.Build(ctx, template.BuildRequest{Name: "good", Spec: good}, &log)
	if err != nil || res.Metadata.Env["SECRET_IMAGE"] != "1" {
		t.Fatalf("a pull with the step form's credentials: %+v %v\n%s", res, err, log.String())
	}

	kb, _ := newStoreBuilderWith(t, func(o *template.BuilderOptions) {
		o.Registries = image.RemoteOptions{PrivateRegistries: []string{reg.addr},
			Keychain: staticKeychain{registry: reg.addr, user: reg.user, pass: reg.pass}}
	})
	if _, err := kb.Build(ctx, template.BuildRequest{Name: "operator", Dockerfile: "FROM " + ref + "\n"}, &log); err != nil {
		t.Fatalf("a pull with the operator's keychain: %v\n%s", err, log.String())
	}
}

// TestRegistryPrivateAddress attacks the host through FROM: an image
// reference naming a registry on the host's loopback (by address or by a name
// that resolves there) would make the server fetch from its own services.
// Unless the operator allows that registry, the pull is refused at connect
// time; allowed, the same pull works, so the guard is what stops it.
func TestRegistryPrivateAddress(t *testing.T) {
	reg := startRegistry(t, false)
	ctx := context.Background()
	ref := reg.push(t, "x/y:1", imageOf(t, v1.Config{}, makeTar(t, false, tarEntry{name: "f", body: "1"})))
	port := reg.addr[strings.LastIndexByte(reg.addr, ':')+1:]
	guarded, _ := newStoreBuilder(t)
	for _, r := range []string{ref, "localhost:" + port + "/x/y:1", "[::ffff:127.0.0.1]:" + port + "/x/y:1"} {
		var log syncBuffer
		_, err := guarded.Build(ctx, template.BuildRequest{Name: "ssrf", Dockerfile: "FROM " + r + "\n"}, &log)
		if !errors.Is(err, template.ErrRegistry) || !strings.Contains(err.Error(), "registry on a private address") {
			t.Errorf("FROM %s: %v, want a refusal of the private address", r, err)
		}
	}
	allowed, _ := newStoreBuilderWith(t, func(o *template.BuilderOptions) {
		o.Registries = image.RemoteOptions{PrivateRegistries: []string{reg.addr}}
	})
	var log syncBuffer
	if _, err := allowed.Build(ctx, template.BuildRequest{Name: "ok", Dockerfile: "FROM " + ref + "\n"}, &log); err != nil {
		t.Fatalf("the same pull from an allowed registry: %v\n%s", err, log.String())
	}
}

// bashImageLayer is a layer with bash and the libraries it links (taken from
// the base tree, found with ldd), /bin/sh, and a passwd with root, user and
// app: the smallest image a sandbox runs commands in.
func bashImageLayer(t *testing.T, base string) []byte {
	t.Helper()
	out, err := exec.Command("ldd", filepath.Join(base, "usr/bin/bash")).Output()
	if err != nil {
		t.Fatalf("ldd bash: %v", err)
	}
	entries := []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755}, {name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777}, {name: "root/", typ: tar.TypeDir, mode: 0o700},
		{name: "home/", typ: tar.TypeDir, mode: 0o755}, {name: "home/app/", typ: tar.TypeDir, mode: 0o755, uid: 1001},
		{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/tmp:/bin/bash\napp:x:1001:1001::/home/app:/bin/bash\n"},
		{name: "etc/group", body: "root:x:0:\nuser:x:1000:\napp:x:1001:\n"},
		{name: "bin/sh", typ: tar.TypeSymlink, link: "bash"},
	}
	add := func(name, from string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, tarEntry{name: name, body: string(data), mode: 0o755})
	}
	add("bin/bash", filepath.Join(base, "usr/bin/bash"))
	dirs := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>":
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		default:
			continue
		}
		rel := strings.TrimPrefix(lib, "/")
		for d := filepath.Dir(rel); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			entries = append(entries, tarEntry{name: d + "/", typ: tar.TypeDir, mode: 0o755})
		}
		add(rel, filepath.Join(base, rel))
	}
	return makeTar(t, true, entries...)
}

// TestRegistryImageRuns: an image pushed to a registry becomes a template a
// sandbox runs: the image's environment and the RUN step's file are there,
// as the template's user.
func TestRegistryImageRuns(t *testing.T) {
	reg := startRegistry(t, true)
	h := newHarnessWith(t, func(o *template.BuilderOptions) {
		o.Registries = image.RemoteOptions{PrivateRegistries: []string{reg.addr}}
	})
	ctx := context.Background()
	ref := reg.push(t, "apps/bash:1", imageOf(t, v1.Config{Env: []string{"PATH=/bin", "FROM_IMAGE=pushed"}, WorkingDir: "/home/app"},
		bashImageLayer(t, h.base)))
	var log syncBuffer
	res, err := h.builder.Build(ctx, template.BuildRequest{Name: "fromreg", CPUCount: 1, MemoryMB: 256,
		Spec: &template.Spec{FromImage: ref, Registry: &template.RegistryAuth{Username: reg.user, Password: reg.pass}, Steps: []template.SpecStep{
			{Type: "RUN", Args: []string{"echo built-in-a-step > /built.txt"}},
			{Type: "USER", Args: []string{"app"}},
		}}}, &log)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	m := res.Metadata
	st, err := h.engine.Create(ctx, engine.Spec{ID: "fromregsb", TemplateID: "fromreg", RootfsPath: m.Rootfs, CPUCount: 1, MemoryMB: 256,
		DiskSizeMB: 512, AccessToken: "tok", EnvVars: m.Env, DefaultUser: m.DefaultUser, DefaultWorkdir: m.DefaultWorkdir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.engine.Kill(ctx, "fromregsb")
	got, code := shIn(ctx, t, st.Address, "tok", `read -r l < /built.txt; echo "$l|$FROM_IMAGE|$PWD|$UID"`)
	if code != 0 || got != "built-in-a-step|pushed|/home/app|1001" {
		t.Errorf("in the sandbox: %q (exit %d)", got, code)
	}
}
