package kube

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// api is a client of the test cluster's API server, as its administrator.
type api struct {
	base string
	hc   *http.Client
}

func newAPI(t *testing.T, base string, p *pki) *api {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(must(os.ReadFile(p.CA))(t))
	pair := must(tls.LoadX509KeyPair(p.AdminCert, p.AdminKey))(t)
	return &api{base: base, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}}
}

// do sends a request with a JSON body (nil for none) and returns the status
// and the body.
func (a *api) do(method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// get decodes the object at path into v.
func (a *api) get(path string, v any) error {
	code, b, err := a.do("GET", path, nil)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("GET %s: %d %s", path, code, b)
	}
	return json.Unmarshal(b, v)
}

// kinds are where the objects Lelantos' manifests and the test create live
// in the API: the collection's path, with NS for the namespace.
var kinds = map[string]string{
	"v1/Namespace":                             "/api/v1/namespaces",
	"v1/PersistentVolume":                      "/api/v1/persistentvolumes",
	"v1/ServiceAccount":                        "/api/v1/namespaces/NS/serviceaccounts",
	"v1/Service":                               "/api/v1/namespaces/NS/services",
	"v1/Secret":                                "/api/v1/namespaces/NS/secrets",
	"v1/ConfigMap":                             "/api/v1/namespaces/NS/configmaps",
	"apps/v1/Deployment":                       "/apis/apps/v1/namespaces/NS/deployments",
	"apps/v1/StatefulSet":                      "/apis/apps/v1/namespaces/NS/statefulsets",
	"apps/v1/DaemonSet":                        "/apis/apps/v1/namespaces/NS/daemonsets",
	"rbac.authorization.k8s.io/v1/Role":        "/apis/rbac.authorization.k8s.io/v1/namespaces/NS/roles",
	"rbac.authorization.k8s.io/v1/RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/NS/rolebindings",
}

// create makes obj, refusing unknown or duplicate fields as `kubectl
// apply --validate=strict` does: a manifest with a field the API does not
// know fails here.
func (a *api) create(obj map[string]any) error {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	path, ok := kinds[apiVersion+"/"+kind]
	if !ok {
		return fmt.Errorf("%s %s: a kind the test does not know", apiVersion, kind)
	}
	if strings.Contains(path, "NS") {
		if ns == "" {
			return fmt.Errorf("%s %s has no namespace", kind, name)
		}
		path = strings.Replace(path, "NS", ns, 1)
	}
	code, b, err := a.do("POST", path+"?fieldValidation=Strict", obj)
	if err != nil {
		return fmt.Errorf("create %s %s: %w", kind, name, err)
	}
	if code != 201 {
		return fmt.Errorf("create %s %s: %d %s", kind, name, code, b)
	}
	return nil
}

// docSep separates the documents of a YAML file.
var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// objects reads the YAML documents of a manifest file.
func objects(path string) ([]map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, doc := range docSep.Split(string(b), -1) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj) > 0 {
			out = append(out, obj)
		}
	}
	return out, nil
}
