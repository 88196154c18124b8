// Package kube tests deploy/kubernetes on a real one-node Kubernetes that
// the test starts on this machine (etcd, the API server, the controller
// manager, the scheduler, the kubelet, kube-proxy and containerd, built by
// scripts/install-kube.sh): the manifests are applied unchanged, strictly
// validated by the API server, from Lelantos' own image, and the npm e2b
// client drives a sandbox through the API Service. tests/kube/run.sh gives
// it the binaries, the images and the client.
package kube

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const namespace = "lelantos"

// TestKubernetes: deploy/kubernetes runs on Kubernetes unchanged: PostgreSQL,
// two control-plane replicas and the node DaemonSet come up; the node
// registers by itself; the e2b client creates a sandbox through the API
// Service, runs a command in it, pauses it with its memory and resumes it.
func TestKubernetes(t *testing.T) {
	bin := os.Getenv("LELANTOS_KUBE_DIR")
	if bin == "" || os.Getenv("LELANTOS_IMAGE") == "" {
		t.Skip("needs Kubernetes' binaries and Lelantos' image: run tests/kube/run.sh (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: a kubelet and privileged pods")
	}
	repo := must(filepath.Abs("../.."))(t)
	c := startCluster(t, filepath.Join(bin, "bin"))

	// What README.md asks the operator to make: the cluster's certificates,
	// the admin key and the database's password, as Secrets.
	tlsDir := filepath.Join(c.dir, "lelantos-tls")
	lelantos := filepath.Join(repo, "bin", "lelantos")
	for _, args := range [][]string{{"certs", "init", tlsDir, "--hosts", "lelantos-cluster"}, {"certs", "node-issuer", tlsDir}} {
		if out, err := exec.Command(lelantos, args...).CombinedOutput(); err != nil {
			t.Fatalf("lelantos %v: %v: %s", args, err, out)
		}
	}
	adminKey := "e2b_" + randomHex(20)
	secrets := map[string]map[string]string{
		"lelantos-control-plane-tls": files(t, tlsDir, "ca.pem", "control-plane.pem", "control-plane-key.pem"),
		"lelantos-node-issuer":       files(t, tlsDir, "ca.pem", "node-issuer.pem", "node-issuer-key.pem"),
		"lelantos-admin-key":         {"admin-key": adminKey},
		"lelantos-postgres":          {"password": randomHex(16)},
	}

	// Apply the manifests in kustomization.yaml's order, the Secrets once
	// the namespace exists.
	deploy := filepath.Join(repo, "deploy", "kubernetes")
	var kust struct{ Resources []string }
	if err := yaml.Unmarshal(must(os.ReadFile(filepath.Join(deploy, "kustomization.yaml")))(t), &kust); err != nil || len(kust.Resources) == 0 {
		t.Fatalf("kustomization.yaml: %v %+v", err, kust)
	}
	t.Cleanup(func() { c.deleteNamespace(t) })
	for i, file := range kust.Resources {
		objs, err := objects(filepath.Join(deploy, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			if err := c.api.create(obj); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		}
		if i == 0 {
			c.createSecrets(t, secrets)
			c.createVolume(t)
		}
	}
	c.waitReady(t)
	// The replicas may start before the database answers: they wait for it
	// rather than crash.
	c.noRestarts(t, "app.kubernetes.io/name=lelantos-control-plane")

	apiIP, sandboxIP := c.clusterIP(t, "lelantos-api"), c.clusterIP(t, "lelantos-sandbox")
	cpIP := c.podIP(t, "app.kubernetes.io/name=lelantos-control-plane")
	// What a sandbox must not reach: the Services, the database, a replica's
	// pod, and its own node's agent and metrics.
	targets := []string{apiIP + ":80", c.clusterIP(t, "lelantos-cluster") + ":3903", c.clusterIP(t, "lelantos-postgres") + ":5432",
		cpIP + ":3000", cpIP + ":9090", nodeIP + ":3910", nodeIP + ":3920"}
	env := []string{"E2B_API_URL=http://" + apiIP, "E2B_SANDBOX_URL=http://" + sandboxIP, "E2B_API_KEY=" + adminKey,
		"NODE_PATH=" + os.Getenv("LELANTOS_CLIENT_MODULES"), "TARGETS=" + strings.Join(targets, " ")}
	got := runNode(t, env, `
const {Sandbox} = require('e2b')
const nodes = async () => (await fetch(process.env.E2B_API_URL + '/nodes', {headers: {'X-API-Key': process.env.E2B_API_KEY}})).json()
;(async () => {
  // Ready pods may come before kube-proxy routes the Service to them: until
  // then it refuses connections.
  let n, err
  for (let i = 0; i < 240; i++) {
    try { n = await nodes(); err = undefined } catch (e) { n = []; err = e }
    if (n.length === 1 && n[0].status === 'ready') break
    await new Promise(r => setTimeout(r, 500))
  }
  if (n.length !== 1 || n[0].status !== 'ready') throw new Error('nodes: ' + JSON.stringify(n) + (err ? ' ' + err.cause : ''))
  const s = await Sandbox.create({timeoutMs: 300000})
  const out = [(await s.commands.run('echo hi from $(hostname)')).stdout.trim().split(' ').slice(0, 2).join(' ')]
  const probe = await s.commands.run('for t in $TARGETS; do timeout 3 bash -c "exec 3<>/dev/tcp/${t%:*}/${t#*:}" 2>/dev/null && echo "reached $t"; done; true',
    {envs: {TARGETS: process.env.TARGETS}})
  out.push(probe.stdout.trim() || 'reached nothing')
  await s.commands.run('echo in memory > /dev/shm/mark')
  await s.pause()
  const back = await Sandbox.connect(s.sandboxId)
  out.push((await back.commands.run('cat /dev/shm/mark')).stdout.trim())
  out.push((await Sandbox.list().nextItems()).length === 1 ? 'listed' : 'not listed')
  await back.commands.run('echo on disk > /home/user/mark')
  await back.pause()
  const running = await Sandbox.create({timeoutMs: 300000})
  await running.commands.run('echo still running > /dev/shm/alive')
  console.log(out.join(',') + '\n' + s.sandboxId + '\n' + running.sandboxId)
})().catch(e => { console.error(e); process.exit(1) })`)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if want := "hi from,reached nothing,in memory,listed"; len(lines) != 3 || lines[0] != want {
		t.Fatalf("through the Service the client got %q, want %q and two IDs", got, want)
	}
	paused, running := lines[1], lines[2]

	// A new node pod (an upgrade, a crash) finds the paused sandbox in its
	// host path, and it resumes with its memory and files; the running one
	// went on meanwhile, and the new agent adopts it.
	c.restartNodePod(t)
	got = runNode(t, append(env, "PAUSED="+paused, "RUNNING="+running), `
const {Sandbox} = require('e2b')
;(async () => {
  let s
  for (let i = 0; ; i++) {
    try { s = await Sandbox.connect(process.env.PAUSED); break } catch (e) { if (i >= 60) throw e }
    await new Promise(r => setTimeout(r, 1000))
  }
  const out = (await s.commands.run('cat /dev/shm/mark /home/user/mark')).stdout.trim().split('\n')
  await s.kill()
  const r = await Sandbox.connect(process.env.RUNNING)
  out.push((await r.commands.run('cat /dev/shm/alive')).stdout.trim())
  await r.kill()
  console.log(out.join(','))
})().catch(e => { console.error(e); process.exit(1) })`)
	if want := "in memory,on disk,still running"; strings.TrimSpace(got) != want {
		t.Fatalf("after the node pod's restart the client got %q, want %q", got, want)
	}
	// Operators scrape both: a replica's metrics on its pod, the node's on
	// its host.
	for addr, want := range map[string]string{cpIP + ":9090": "lelantos_nodes", nodeIP + ":3920": "lelantos_"} {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("metrics at %s: %v", addr, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("metrics at %s: %d, no %s in:\n%.600s", addr, res.StatusCode, want, b)
		}
	}
}

// restartNodePod deletes the node agent's pod and waits for the DaemonSet's
// next one to be ready.
func (c *cluster) restartNodePod(t *testing.T) {
	t.Helper()
	var pods struct {
		Items []struct{ Metadata struct{ Name string } }
	}
	sel := "/api/v1/namespaces/" + namespace + "/pods?labelSelector=app.kubernetes.io/name=lelantos-node"
	if err := c.api.get(sel, &pods); err != nil || len(pods.Items) != 1 {
		t.Fatalf("the node pod: %v %+v", err, pods)
	}
	old := pods.Items[0].Metadata.Name
	if code, b, err := c.api.do("DELETE", "/api/v1/namespaces/"+namespace+"/pods/"+old, nil); err != nil || code != 200 {
		t.Fatalf("delete the node pod: %d %s %v", code, b, err)
	}
	ok := waitFor(3*time.Minute, time.Second, func() bool {
		var ds struct {
			Status struct{ NumberReady int }
		}
		var now struct {
			Items []struct{ Metadata struct{ Name string } }
		}
		return c.api.get(sel, &now) == nil && len(now.Items) == 1 && now.Items[0].Metadata.Name != old &&
			c.api.get("/apis/apps/v1/namespaces/"+namespace+"/daemonsets/lelantos-node", &ds) == nil && ds.Status.NumberReady == 1
	})
	if !ok {
		t.Fatalf("no new node pod is ready:\n%s", c.describe(t))
	}
}

// noRestarts fails t if a container of a pod matching selector restarted.
func (c *cluster) noRestarts(t *testing.T, selector string) {
	t.Helper()
	var pods struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				ContainerStatuses []struct {
					Name         string
					RestartCount int
				}
			}
		}
	}
	if err := c.api.get("/api/v1/namespaces/"+namespace+"/pods?labelSelector="+selector, &pods); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount > 0 {
				t.Errorf("container %s of pod %s restarted %d times:\n%s", cs.Name, p.Metadata.Name, cs.RestartCount, c.describe(t))
			}
		}
	}
}

// podIP is the address of a running pod matching selector.
func (c *cluster) podIP(t *testing.T, selector string) string {
	t.Helper()
	var pods struct {
		Items []struct {
			Status struct{ PodIP, Phase string }
		}
	}
	if err := c.api.get("/api/v1/namespaces/"+namespace+"/pods?labelSelector="+selector, &pods); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == "Running" && p.Status.PodIP != "" {
			return p.Status.PodIP
		}
	}
	t.Fatalf("no running pod of %s", selector)
	return ""
}

// files reads names from dir as a Secret's data.
func files(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		out[n] = string(must(os.ReadFile(filepath.Join(dir, n)))(t))
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// createSecrets makes the Secrets of the namespace.
func (c *cluster) createSecrets(t *testing.T, secrets map[string]map[string]string) {
	t.Helper()
	for name, data := range secrets {
		enc := map[string]any{}
		for k, v := range data {
			enc[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
		obj := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": name, "namespace": namespace}, "data": enc}
		if err := c.api.create(obj); err != nil {
			t.Fatal(err)
		}
	}
}

// createVolume is the cluster's storage for the PostgreSQL StatefulSet's
// claim: a host directory, as a provisioner would make one.
func (c *cluster) createVolume(t *testing.T) {
	t.Helper()
	path := filepath.Join(c.dir, "pv-postgres")
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	pv := map[string]any{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": map[string]any{"name": "lelantos-test-postgres"},
		"spec": map[string]any{"capacity": map[string]any{"storage": "1Gi"}, "accessModes": []string{"ReadWriteOnce"},
			"persistentVolumeReclaimPolicy": "Retain", "hostPath": map[string]any{"path": path, "type": "Directory"}}}
	if err := c.api.create(pv); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for the StatefulSet, both control-plane replicas and the
// node to be ready, and says what is not when they are not.
func (c *cluster) waitReady(t *testing.T) {
	t.Helper()
	type status struct {
		Status struct {
			ReadyReplicas, AvailableReplicas, NumberReady int
		}
	}
	ready := func(path string, n func(status) int, want int) bool {
		var s status
		return c.api.get(path, &s) == nil && n(s) >= want
	}
	ok := waitFor(6*time.Minute, 2*time.Second, func() bool {
		return ready("/apis/apps/v1/namespaces/"+namespace+"/statefulsets/lelantos-postgres", func(s status) int { return s.Status.ReadyReplicas }, 1) &&
			ready("/apis/apps/v1/namespaces/"+namespace+"/deployments/lelantos-control-plane", func(s status) int { return s.Status.AvailableReplicas }, 2) &&
			ready("/apis/apps/v1/namespaces/"+namespace+"/daemonsets/lelantos-node", func(s status) int { return s.Status.NumberReady }, 1)
	})
	if !ok {
		t.Fatalf("Lelantos is not ready on Kubernetes:\n%s", c.describe(t))
	}
}

// describe says how each pod of the namespace stands, with its logs.
func (c *cluster) describe(t *testing.T) string {
	var pods struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   json.RawMessage
		}
	}
	if err := c.api.get("/api/v1/namespaces/"+namespace+"/pods", &pods); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: %s\n", p.Metadata.Name, p.Status)
		_, logs, _ := c.api.do("GET", "/api/v1/namespaces/"+namespace+"/pods/"+p.Metadata.Name+"/log?tailLines=30", nil)
		fmt.Fprintf(&b, "logs:\n%s\n", logs)
		if code, prev, _ := c.api.do("GET", "/api/v1/namespaces/"+namespace+"/pods/"+p.Metadata.Name+"/log?previous=true&tailLines=30", nil); code == 200 {
			fmt.Fprintf(&b, "logs of the container before its restart:\n%s\n", prev)
		}
	}
	return b.String()
}

// clusterIP is the address of Service name.
func (c *cluster) clusterIP(t *testing.T, name string) string {
	t.Helper()
	var svc struct{ Spec struct{ ClusterIP string } }
	if err := c.api.get("/api/v1/namespaces/"+namespace+"/services/"+name, &svc); err != nil || svc.Spec.ClusterIP == "" {
		t.Fatalf("Service %s: %v %+v", name, err, svc)
	}
	return svc.Spec.ClusterIP
}

// deleteNamespace removes Lelantos from the cluster and waits for its pods
// to be gone, so that the node agent stops its sandboxes with its pod.
func (c *cluster) deleteNamespace(t *testing.T) {
	if t.Failed() {
		t.Logf("the namespace at the failure:\n%s", c.describe(t))
	}
	c.api.do("DELETE", "/api/v1/namespaces/"+namespace, nil)
	gone := waitFor(2*time.Minute, time.Second, func() bool {
		var pods struct{ Items []json.RawMessage }
		return c.api.get("/api/v1/namespaces/"+namespace+"/pods", &pods) == nil && len(pods.Items) == 0
	})
	if !gone {
		t.Log("the namespace's pods were not gone after 2 minutes; their containers are killed")
	}
}

// runNode runs a Node.js program with the npm e2b client and env, and
// returns its standard output.
func runNode(t *testing.T, env []string, program string) string {
	t.Helper()
	cmd := exec.Command("node", "-e", program)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the e2b client: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	return string(out)
}
