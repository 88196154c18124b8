package kube

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lelantos.dev/lelantos/internal/engine/enginetest"
)

// The test cluster's addresses. The node's address is one of its own on
// the loopback interface, so that pods (on the bridge) and the host reach it
// alike.
const (
	nodeIP      = "10.92.0.1"
	podCIDR     = "10.90.0.0/24"
	serviceCIDR = "10.91.0.0/24"
	bridgeName  = "lelk8s0"
	etcdPort    = "23790"
	apiPort     = "16443"
	kubeletPort = "10350"
)

// cluster is a one-node Kubernetes on this machine: etcd, the API server,
// the controller manager, the scheduler, containerd (runc), the kubelet and
// kube-proxy, each a process of the test, with their state under dir.
type cluster struct {
	dir, bin string
	pki      *pki
	api      *api
	procs    []*proc
	ctrAddr  string
}

// hostSettings are the kernel settings the cluster changes, restored after.
var hostSettings = []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"}

// startCluster starts the cluster from the binaries in bin and waits for
// its node to be ready. Everything it started or changed is undone in t's
// cleanup.
func startCluster(t *testing.T, bin string) *cluster {
	t.Helper()
	for _, port := range []string{etcdPort, "23800", apiPort, kubeletPort, "3910"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatalf("port %s is taken: the Kubernetes test needs it: %v", port, err)
		}
		ln.Close()
	}
	dir, err := os.MkdirTemp("", "lelantos-kube-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{dir: dir, bin: bin, ctrAddr: filepath.Join(dir, "containerd.sock")}
	t.Cleanup(func() {
		_ = enginetest.UnmountUnder(dir)
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("the cluster's logs and state are kept in %s", dir)
		}
	})
	for _, d := range []string{"pki", "etcd", "cni", "kubelet", "logs"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	saved := map[string]string{}
	for _, p := range hostSettings {
		b, _ := os.ReadFile(p)
		saved[p] = strings.TrimSpace(string(b))
	}
	t.Cleanup(func() {
		for p, v := range saved {
			os.WriteFile(p, []byte(v), 0o644)
		}
	})
	os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1"), 0o644)
	if out, err := sh("ip addr add " + nodeIP + "/32 dev lo"); err != nil {
		t.Fatalf("the node's address: %v: %s", err, out)
	}
	t.Cleanup(func() { sh("ip addr del " + nodeIP + "/32 dev lo; ip link del " + bridgeName + " 2>/dev/null") })

	c.pki = newPKI(t, filepath.Join(dir, "pki"), []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(nodeIP), net.ParseIP("10.91.0.1")})
	server := "https://127.0.0.1:" + apiPort
	kubeconfig := c.pki.kubeconfig(t, server)
	c.api = newAPI(t, server, c.pki)
	logs := filepath.Join(dir, "logs")
	run := func(name string, env []string, args ...string) {
		c.procs = append(c.procs, start(t, logs, name, filepath.Join(bin, name), env, args...))
	}

	run("etcd", nil, "--name=test", "--data-dir="+filepath.Join(dir, "etcd"), "--unsafe-no-fsync",
		"--listen-client-urls=http://127.0.0.1:"+etcdPort, "--advertise-client-urls=http://127.0.0.1:"+etcdPort,
		"--listen-peer-urls=http://127.0.0.1:23800", "--initial-advertise-peer-urls=http://127.0.0.1:23800",
		"--initial-cluster=test=http://127.0.0.1:23800")
	run("kube-apiserver", nil, "--etcd-servers=http://127.0.0.1:"+etcdPort, "--bind-address=127.0.0.1", "--secure-port="+apiPort,
		"--advertise-address="+nodeIP, "--tls-cert-file="+c.pki.ServerCert, "--tls-private-key-file="+c.pki.ServerKey,
		"--client-ca-file="+c.pki.CA, "--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+c.pki.SAPub, "--service-account-signing-key-file="+c.pki.SAKey,
		"--service-cluster-ip-range="+serviceCIDR, "--authorization-mode=Node,RBAC", "--endpoint-reconciler-type=none",
		"--kubelet-client-certificate="+c.pki.AdminCert, "--kubelet-client-key="+c.pki.AdminKey,
		"--kubelet-preferred-address-types=Hostname", "--allow-privileged=true", "--profiling=false",
		"--cert-dir="+filepath.Join(dir, "pki", "apiserver"))
	if !waitFor(90*time.Second, 300*time.Millisecond, func() bool { code, _, err := c.api.do("GET", "/readyz", nil); return err == nil && code == 200 }) {
		t.Fatalf("the API server is not ready:\n%s", c.procs[1].tail(30))
	}
	run("kube-controller-manager", nil, "--kubeconfig="+kubeconfig, "--service-account-private-key-file="+c.pki.SAKey,
		"--root-ca-file="+c.pki.CA, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10357",
		"--cluster-cidr="+podCIDR, "--service-cluster-ip-range="+serviceCIDR)
	run("kube-scheduler", nil, "--kubeconfig="+kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10359")

	// What the pods leave on the host once containerd has stopped them.
	t.Cleanup(func() { sweepNode() })
	c.startContainerd(t)
	c.startKubelet(t, kubeconfig)
	t.Cleanup(func() { sh(filepath.Join(bin, "kube-proxy") + " --cleanup >/dev/null 2>&1") })
	run("kube-proxy", nil, "--kubeconfig="+kubeconfig, "--proxy-mode=iptables", "--hostname-override=localhost",
		"--cluster-cidr="+podCIDR, "--conntrack-max-per-core=0", "--metrics-bind-address=127.0.0.1:10349",
		"--healthz-bind-address=127.0.0.1:10356")

	ready := waitFor(3*time.Minute, time.Second, func() bool {
		var node struct {
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
		if c.api.get("/api/v1/nodes/localhost", &node) != nil {
			return false
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == "True" {
				return true
			}
		}
		return false
	})
	if !ready {
		t.Fatalf("the node is not ready; kubelet:\n%s", c.procs[len(c.procs)-2].tail(40))
	}
	return c
}

// startContainerd starts containerd with runc and the CNI bridge, and
// imports the images the pods run.
func (c *cluster) startContainerd(t *testing.T) {
	t.Helper()
	cni := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "lelantos-test", "plugins": [{"type": "bridge", "bridge": %q,
  "isGateway": true, "ipMasq": true, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}}]}`,
		bridgeName, podCIDR, filepath.Join(c.dir, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(c.dir, "cni", "10-lelantos-test.conflist"), []byte(cni), 0o644); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`version = 3
root = %q
state = %q
[grpc]
  address = %q
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '/usr/sbin/runc'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = %q
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = 'lelantos.dev/pause:1'
`, filepath.Join(c.dir, "containerd", "root"), filepath.Join(c.dir, "containerd", "state"), c.ctrAddr, filepath.Join(c.dir, "cni"))
	path := filepath.Join(c.dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + c.bin + ":" + os.Getenv("PATH")}
	p := start(t, filepath.Join(c.dir, "logs"), "containerd", filepath.Join(c.bin, "containerd"), env, "--config="+path)
	c.procs = append(c.procs, p)
	if !waitFor(30*time.Second, 200*time.Millisecond, func() bool { _, err := os.Stat(c.ctrAddr); return err == nil }) {
		t.Fatalf("containerd did not start:\n%s", p.tail(30))
	}
	// Containers the pods left (a failed run) are killed before containerd stops.
	t.Cleanup(func() {
		ctr := filepath.Join(c.bin, "ctr") + " --address " + c.ctrAddr + " -n k8s.io "
		sh(fmt.Sprintf(`for id in $(%[1]s tasks ls -q); do %[1]s tasks kill -s SIGKILL "$id"; done; sleep 1
for id in $(%[1]s tasks ls -q); do %[1]s tasks delete -f "$id"; done`, ctr))
	})
	for _, img := range []string{os.Getenv("LELANTOS_PAUSE_IMAGE"), os.Getenv("LELANTOS_IMAGE")} {
		if out, err := sh(fmt.Sprintf("%s --address %s -n k8s.io images import %s", filepath.Join(c.bin, "ctr"), c.ctrAddr, img)); err != nil {
			t.Fatalf("import %s: %v: %s", img, err, out)
		}
	}
}

// startKubelet starts the kubelet of node "localhost" at nodeIP.
func (c *cluster) startKubelet(t *testing.T, kubeconfig string) {
	t.Helper()
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %s
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, kubeletPort, c.pki.CA, c.ctrAddr)
	path := filepath.Join(c.dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, filepath.Join(c.dir, "logs"), "kubelet", filepath.Join(c.bin, "kubelet"), nil,
		"--config="+path, "--kubeconfig="+kubeconfig, "--hostname-override=localhost", "--node-ip="+nodeIP,
		"--root-dir="+filepath.Join(c.dir, "kubelet"), "--cert-dir="+filepath.Join(c.dir, "pki", "kubelet"))
	c.procs = append(c.procs, p)
}

// The node agent's host state, as deploy/kubernetes/node.yaml configures it.
const (
	nodeDataDir   = "/var/lib/lelantos-node"
	nodeNetPrefix = "lk8"
)

// sweepNode removes what the node agent's pod leaves on the host when it
// stops with sandboxes running (it keeps them for its next start, and a
// test has none): the sandboxes' processes and cgroups, its rules and
// chains, links, network namespaces and its data directory; and the chains the kubelet and
// kube-proxy leave.
func sweepNode() {
	sh(fmt.Sprintf(`
for tbl in filter nat mangle raw; do
  iptables -w -t $tbl -S | grep -E -- '-j (%[1]s|KUBE-)|[io] %[2]s' | sed 's/^-A /-D /' | while read -r rule; do iptables -w -t $tbl $rule; done
  chains=$(iptables -w -t $tbl -S | awk '$1 == "-N" && ($2 ~ /^%[1]s/ || $2 ~ /^KUBE-/) {print $2}')
  for c in $chains; do iptables -w -t $tbl -F "$c"; done
  for c in $chains; do iptables -w -t $tbl -X "$c"; done
done
if [ "$(iptables -w -S LELANTOS-FORWARDING 2>/dev/null | wc -l)" = 1 ]; then
  iptables -w -D FORWARD -j LELANTOS-FORWARDING; iptables -w -X LELANTOS-FORWARDING
fi
for l in $(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^%[2]s'); do ip link del "$l"; done
for id in $(ls %[3]s/node/sandboxes 2>/dev/null); do
  cat /sys/fs/cgroup/*/lelantos/"$id"/cgroup.procs 2>/dev/null | sort -u | xargs -r kill -9 2>/dev/null
done
sleep 0.5
for id in $(ls %[3]s/node/sandboxes 2>/dev/null); do rmdir /sys/fs/cgroup/*/lelantos/"$id" 2>/dev/null; done
for ns in /run/netns/%[2]s*; do [ -e "$ns" ] && umount "$ns" 2>/dev/null; rm -f "$ns"; done
true`, strings.ToUpper(nodeNetPrefix), nodeNetPrefix, nodeDataDir))
	_ = enginetest.UnmountUnder(nodeDataDir)
	os.RemoveAll(nodeDataDir)
}
