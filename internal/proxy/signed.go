package proxy

import (
	"context"
	"net/http"
	"strconv"

	"lelantos.dev/lelantos/internal/filesig"
)

// SignedFile is a signed file URL of the in-sandbox daemon (GET or POST
// /files?path=&username=&signature=[&signature_expiration=]) that reached the
// proxy with nothing else naming its sandbox: what the e2b clients' downloadUrl
// and uploadUrl return when every sandbox shares one E2B_SANDBOX_URL.
type SignedFile struct {
	// Path and Username are the query's path and username ("" when absent).
	Path, Username string
	// Operation is filesig.OpRead for GET, filesig.OpWrite for POST.
	Operation string
	// Signature is the query's signature.
	Signature string
	// Expiration is the query's signature_expiration, nil when absent.
	Expiration *int64
}

// SignedFileResolver finds the running sandbox whose daemon token made a signed
// file URL's signature. It returns an error wrapping ErrSandboxNotFound when no
// sandbox's token did.
type SignedFileResolver interface {
	ResolveSignedFile(ctx context.Context, f SignedFile) (sandboxID string, err error)
}

// signedFile reads a signed file URL from r; ok is false when r is not one.
func signedFile(r *http.Request) (SignedFile, bool) {
	if r.URL.Path != "/files" {
		return SignedFile{}, false
	}
	var op string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		op = filesig.OpRead
	case http.MethodPost:
		op = filesig.OpWrite
	default:
		return SignedFile{}, false
	}
	q := r.URL.Query()
	f := SignedFile{Path: q.Get("path"), Username: q.Get("username"), Operation: op, Signature: q.Get("signature")}
	if f.Signature == "" {
		return SignedFile{}, false
	}
	if e := q.Get("signature_expiration"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return SignedFile{}, false
		}
		f.Expiration = &n
	}
	return f, true
}

// routeSigned routes a signed file URL without routing headers to the daemon
// of the sandbox that signed it.
func (p *Proxy) routeSigned(r *http.Request) (route, bool) {
	if p.signed == nil {
		return route{}, false
	}
	f, ok := signedFile(r)
	if !ok {
		return route{}, false
	}
	id, err := p.signed.ResolveSignedFile(r.Context(), f)
	if err != nil {
		return route{}, false
	}
	return route{sandboxID: id, port: EnvdPort}, true
}
