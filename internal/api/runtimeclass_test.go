package api

import (
	"testing"

	apispec "lelantos.dev/lelantos/api"
	"lelantos.dev/lelantos/internal/controlplane"
)

// TestCreateRuntimeClassNotEnabled: on a server that offers only gVisor, a create
// asking for runc gets a 400 naming the class and the flag that enables it.
func TestCreateRuntimeClassNotEnabled(t *testing.T) {
	e := newEnv(t)
	svc, err := controlplane.New(controlplane.Config{Logger: quiet(), RuntimeClasses: []string{controlplane.RuntimeGVisor}}, e.db, e.node)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.h = NewHandler(svc, controlplane.NewAuthenticator(e.db, nil), Options{Logger: quiet(), Spec: apispec.Spec(), Templates: svc})
	for _, path := range []string{"/sandboxes", "/v2/sandboxes"} {
		res := e.do("POST", path, `{"templateID":"base","runtimeClass":"runc"}`)
		if res.Status != 400 {
			t.Fatalf("POST %s with runc: %d %s, want 400", path, res.Status, res.Body)
		}
		want := `runtimeClass "runc" is not enabled on this server (lelantos serve --runtime-classes)`
		if msg := res.errorMessage(t); msg != want {
			t.Errorf("POST %s: message %q, want %q", path, msg, want)
		}
		if res := e.do("POST", path, `{"templateID":"base","runtimeClass":"gvisor"}`); res.Status != 201 {
			t.Errorf("POST %s with gvisor: %d %s, want 201", path, res.Status, res.Body)
		}
	}
}
