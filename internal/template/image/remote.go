package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	goruntime "runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Errors of Resolve callers branch on.
var (
	// ErrUnauthorized: the registry refused the credentials, or wants some.
	ErrUnauthorized = errors.New("the registry refused the pull")
	// ErrPrivateAddress: the registry is on a loopback, private or link-local
	// address, which pulls may not reach unless the operator allows it.
	ErrPrivateAddress = errors.New("registry on a private address")
)

// Credentials are a user name and password (or token) for one registry.
type Credentials struct {
	Username, Password string
}

// RemoteOptions say how Resolve reaches registries.
type RemoteOptions struct {
	// Credentials, when set, are used for this image's registry instead of
	// Keychain's.
	Credentials *Credentials
	// Keychain gives credentials by registry (the operator's docker
	// configuration); nil means anonymous pulls.
	Keychain authn.Keychain
	// PrivateRegistries are registries ("host" or "host:port", as in the
	// reference) that may be on loopback, private or link-local addresses. Pulls
	// from any other registry may reach public addresses only, so that a build
	// cannot make the host fetch from itself or its private network.
	PrivateRegistries []string
	// Timeout bounds connecting and each response's headers; 30 s when 0.
	Timeout time.Duration
}

// Remote is an image in a registry, resolved to one manifest for this host's
// platform.
type Remote struct {
	// Ref is the reference as resolved: registry/repository@digest.
	Ref string
	// Digest is the manifest's digest.
	Digest string
	Config Config
	Layers []RemoteLayer
}

// RemoteLayer is one layer of a Remote image.
type RemoteLayer struct {
	// Digest is the compressed blob's digest.
	Digest string
	// Size is the compressed size the manifest gives.
	Size  int64
	layer v1.Layer
	zstd  bool
}

// Open streams the layer as a tar archive: gzip or plain as stored, zstd
// decompressed. The stream is checked against the digest when read to its
// end.
func (l RemoteLayer) Open() (io.ReadCloser, error) {
	var (
		rc  io.ReadCloser
		err error
	)
	if l.zstd {
		rc, err = l.layer.Uncompressed()
	} else {
		rc, err = l.layer.Compressed()
	}
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, mapRemoteErr(err))
	}
	return rc, nil
}

// Resolve reads an image's manifest and configuration from its registry:
// the manifest for linux on this host's architecture when the reference
// names an index. Layers are fetched when opened.
func Resolve(ctx context.Context, ref string, o RemoteOptions) (*Remote, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	reg := r.Context().RegistryStr()
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(guardedTransport(o, slices.Contains(o.PrivateRegistries, reg))),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}),
		remote.WithUserAgent("lelantos"),
	}
	switch {
	case o.Credentials != nil:
		opts = append(opts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: o.Credentials.Username, Password: o.Credentials.Password})))
	case o.Keychain != nil:
		opts = append(opts, remote.WithAuthFromKeychain(o.Keychain))
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s from %s: %w", ref, reg, mapRemoteErr(err))
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("pull %s from %s: %w", ref, reg, mapRemoteErr(err))
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, mapRemoteErr(err))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pull %s: image configuration: %w", ref, mapRemoteErr(err))
	}
	if cf.OS != "" && cf.OS != "linux" || cf.Architecture != "" && cf.Architecture != goruntime.GOARCH {
		return nil, fmt.Errorf("pull %s: the image is for %s/%s, not linux/%s", ref, cf.OS, cf.Architecture, goruntime.GOARCH)
	}
	out := &Remote{Ref: r.Context().Name() + "@" + digest.String(), Digest: digest.String(), Config: remoteConfig(cf)}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, mapRemoteErr(err))
	}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("pull %s: layer %d: %w", ref, i+1, mapRemoteErr(err))
		}
		size, _ := l.Size()
		mt, _ := l.MediaType()
		if !mt.IsLayer() && mt != "" {
			return nil, fmt.Errorf("pull %s: layer %d has media type %s, not an image layer", ref, i+1, mt)
		}
		out.Layers = append(out.Layers, RemoteLayer{Digest: d.String(), Size: size, layer: l,
			zstd: mt == types.OCILayerZStd || strings.HasSuffix(string(mt), "+zstd")})
	}
	return out, nil
}

// remoteConfig keeps what a template uses of an image configuration.
func remoteConfig(cf *v1.ConfigFile) Config {
	c := cf.Config
	out := Config{Env: c.Env, User: c.User, WorkingDir: c.WorkingDir, Cmd: c.Cmd, Entrypoint: c.Entrypoint,
		Labels: c.Labels, Shell: c.Shell, StopSignal: c.StopSignal}
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

// mapRemoteErr marks the registry's refusals.
func mapRemoteErr(err error) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("%w (%d): check the credentials: %v", ErrUnauthorized, te.StatusCode, err)
	}
	return err
}

// guardedTransport is an HTTP transport whose connections may reach only
// public addresses, unless private is set. The check is on the address
// dialled, after resolution, so a name that resolves to a private address
// (or is made to, between two lookups) is refused as well.
func guardedTransport(o RemoteOptions, private bool) http.RoundTripper {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !private {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse %s", ErrPrivateAddress, address)
			}
			if !PublicAddr(ap.Addr()) {
				return fmt.Errorf("%w: %s (pulls from registries on such addresses need the operator's leave)", ErrPrivateAddress, ap.Addr())
			}
			return nil
		}
	}
	return &http.Transport{
		DialContext: d.DialContext, ForceAttemptHTTP2: true, MaxIdleConns: 10, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout, ExpectContinueTimeout: time.Second,
	}
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// PublicAddr reports whether a is a global unicast address: not loopback,
// private, link-local, shared (CGNAT), multicast or unspecified.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsLoopback(), a.IsPrivate(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(),
		a.IsInterfaceLocalMulticast(), a.IsMulticast(), a.IsUnspecified(), cgnat.Contains(a):
		return false
	case a.Is4() && a.As4()[0] == 0:
		return false
	}
	return a.IsGlobalUnicast()
}
