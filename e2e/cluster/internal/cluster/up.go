package cluster

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Up boots the cluster (or, when it already runs, only refreshes the image table) and returns
// the admin kubeconfig's path. A partial cluster (a crashed `up`, a dead component) is torn down
// first.
func Up(ctx context.Context, c *Config, log io.Writer) (string, error) {
	c.Defaults()
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("the local cluster needs root (network namespaces, bridges, mounts)")
	}
	if c.healthy(ctx) {
		if err := c.writeImages(); err != nil {
			return "", err
		}
		fmt.Fprintf(log, "cluster already up (%s)\n", c.StateDir)
		return c.Kubeconfig(), nil
	}
	if _, err := os.Stat(c.StateDir); err == nil {
		fmt.Fprintf(log, "a previous cluster in %s is not healthy: tearing it down first\n", c.StateDir)
		if err := Down(c, log); err != nil {
			return "", err
		}
	}
	started := time.Now()
	step := func(what string) { fmt.Fprintf(log, "%6.2fs %s\n", time.Since(started).Seconds(), what) }
	for _, d := range []string{c.StateDir, c.path("logs"), c.path("pids"), c.path("etcd"), c.path("node")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := setupNetwork(c); err != nil {
		return "", fmt.Errorf("network: %w", err)
	}
	step("network: bridge " + c.Bridge + " " + c.BridgeIP + ", blackhole " + c.ServiceCIDR)
	if err := c.writePKI(); err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	if err := c.writeImages(); err != nil {
		return "", err
	}
	step("certificates, kubeconfigs and image table written")

	kube := filepath.Join(c.BinDir, "kube")
	if err := c.start(component{"etcd", kube, c.etcdArgs()}); err != nil {
		return "", err
	}
	if err := waitFor(ctx, 30*time.Second, "etcd", func() error { return httpOK(fmt.Sprintf("http://127.0.0.1:%d/health", c.EtcdPort)) }); err != nil {
		return "", c.failed(err, "etcd")
	}
	step("etcd ready")
	if err := c.start(component{"kube-apiserver", kube, c.apiserverArgs()}); err != nil {
		return "", err
	}
	client, err := c.client()
	if err != nil {
		return "", err
	}
	if err := waitFor(ctx, 60*time.Second, "kube-apiserver /readyz", func() error {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%v: %s", err, body)
		}
		return nil
	}); err != nil {
		return "", c.failed(err, "kube-apiserver")
	}
	step("kube-apiserver ready")
	for _, comp := range []component{
		{"kube-controller-manager", kube, c.controllerManagerArgs()},
		{"kube-scheduler", kube, c.schedulerArgs()},
		{"legate-node", filepath.Join(c.BinDir, "legate-node"), c.nodeArgs()},
	} {
		if err := c.start(comp); err != nil {
			return "", err
		}
	}
	if err := waitFor(ctx, 60*time.Second, "node "+c.NodeName+" Ready", func() error {
		n, err := client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errNotReady
	}); err != nil {
		return "", c.failed(err, "legate-node")
	}
	step("node ready")
	if err := waitFor(ctx, 60*time.Second, "ServiceAccount default/default and ConfigMap default/kube-root-ca.crt", func() error {
		if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err
	}); err != nil {
		return "", c.failed(err, "kube-controller-manager")
	}
	step("controllers ready")
	return c.Kubeconfig(), nil
}

// healthy reports whether every component runs and the API server answers.
func (c *Config) healthy(ctx context.Context) bool {
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "legate-node"} {
		if !c.running(name) {
			return false
		}
	}
	client, err := c.client()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return err == nil
}

// failed adds the tail of a component's log to an error.
func (c *Config) failed(err error, name string) error {
	b, _ := os.ReadFile(c.path("logs", name+".log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Errorf("%w\n--- last lines of %s:\n%s", err, c.path("logs", name+".log"), strings.Join(lines, "\n"))
}

func (c *Config) client() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

func (c *Config) writePKI() error {
	p, err := newPKI(c.path("pki"))
	if err != nil {
		return err
	}
	apiSANs := []string{c.BridgeIP, "127.0.0.1", c.apiServiceIP(), "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	issues := []struct {
		name           string
		subject        pkix.Name
		server, client bool
		sans           []string
	}{
		{"apiserver", pkix.Name{CommonName: "kube-apiserver"}, true, false, apiSANs},
		{"admin", pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, false, true, nil},
		{"kube-controller-manager", pkix.Name{CommonName: "system:kube-controller-manager"}, false, true, nil},
		{"kube-scheduler", pkix.Name{CommonName: "system:kube-scheduler"}, false, true, nil},
		// The pod runner stands in for a kubelet and a cloud controller (load balancers):
		// it gets full rights rather than the Node authorizer's.
		{"node", pkix.Name{CommonName: "system:node:" + c.NodeName, Organization: []string{"system:masters"}}, false, true, nil},
		{"apiserver-kubelet-client", pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}, false, true, nil},
		{"node-serving", pkix.Name{CommonName: c.NodeName}, true, false, []string{c.BridgeIP, c.NodeName}},
	}
	for _, i := range issues {
		if err := p.issue(i.name, i.subject, i.server, i.client, i.sans...); err != nil {
			return err
		}
	}
	for _, user := range []string{"kube-controller-manager", "kube-scheduler", "node"} {
		if err := c.writeKubeconfig(c.path(user+".kubeconfig"), user); err != nil {
			return err
		}
	}
	return c.writeKubeconfig(c.Kubeconfig(), "admin")
}

func (c *Config) pki(name string) string { return c.path("pki", name) }

func (c *Config) etcdArgs() []string {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPeerPort)
	return []string{"etcd",
		"--name=legate", "--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=legate=" + peer,
		"--listen-metrics-urls=", "--log-level=warn",
		// A throw-away test cluster: no fsync, a small backend quota.
		"--unsafe-no-fsync", "--quota-backend-bytes=" + strconv.Itoa(2<<30),
	}
}

func (c *Config) apiserverArgs() []string {
	return []string{"kube-apiserver",
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPort),
		"--bind-address=" + c.BridgeIP, "--advertise-address=" + c.BridgeIP,
		"--secure-port=" + strconv.Itoa(c.APIServerPort),
		"--cert-dir=" + c.path("pki", "apiserver-generated"),
		"--tls-cert-file=" + c.pki("apiserver.crt"), "--tls-private-key-file=" + c.pki("apiserver.key"),
		"--client-ca-file=" + c.pki("ca.crt"),
		// No aggregated API servers here; set so components' authentication delegation finds a
		// front-proxy CA instead of logging its absence forever.
		"--requestheader-client-ca-file=" + c.pki("ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki("sa.pub"),
		"--service-account-signing-key-file=" + c.pki("sa.key"),
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		// No endpoint for the `kubernetes` Service: nothing serves cluster IPs here; pods reach
		// the API server on the bridge (KUBERNETES_SERVICE_HOST from the pod runner).
		"--endpoint-reconciler-type=none",
		// A new Node would be tainted not-ready until the node-lifecycle controller (not run
		// here) removed it.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--kubelet-client-certificate=" + c.pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + c.pki("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true",
		"--profiling=false",
		"--event-ttl=1h",
		"--v=1",
	}
}

// componentArgs are the flags the controller-manager and the scheduler share: their identity (a
// kubeconfig of their own), their secure port on loopback, no leader election (one of each).
func (c *Config) componentArgs(name string) []string {
	kc := c.path(name + ".kubeconfig")
	return []string{name,
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--v=1",
	}
}

func (c *Config) controllerManagerArgs() []string {
	return append(c.componentArgs("kube-controller-manager"),
		"--use-service-account-credentials=true",
		"--root-ca-file="+c.pki("ca.crt"),
		"--service-account-private-key-file="+c.pki("sa.key"),
		"--cluster-cidr="+c.PodCIDR,
		"--service-cluster-ip-range="+c.ServiceCIDR,
		"--controllers="+strings.Join([]string{
			"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
			"job-controller", "endpointslice-controller", "endpointslice-mirroring-controller",
			"garbage-collector-controller", "namespace-controller", "serviceaccount-controller",
			"serviceaccount-token-controller", "root-ca-certificate-publisher-controller",
			"pod-garbage-collector-controller", "disruption-controller", "ttl-after-finished-controller",
			"clusterrole-aggregation-controller",
		}, ","),
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
	)
}

func (c *Config) schedulerArgs() []string { return c.componentArgs("kube-scheduler") }

func (c *Config) nodeArgs() []string {
	return []string{"run",
		"--kubeconfig=" + c.path("node.kubeconfig"),
		"--node-name=" + c.NodeName,
		"--bridge=" + c.Bridge,
		"--bridge-ip=" + c.BridgeIP,
		"--pod-cidr=" + c.PodCIDR,
		"--lb-pool=" + c.LBPool,
		"--state-dir=" + c.path("node"),
		"--images=" + c.path("images.json"),
		"--listen=" + fmt.Sprintf("%s:%d", c.BridgeIP, c.KubeletPort),
		"--tls-cert=" + c.pki("node-serving.crt"), "--tls-key=" + c.pki("node-serving.key"),
		"--apiserver-host=" + c.BridgeIP, "--apiserver-port=" + strconv.Itoa(c.APIServerPort),
	}
}

func httpOK(url string) error {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// waitFor polls check every 200 ms until it succeeds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %v", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
