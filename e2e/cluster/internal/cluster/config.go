// Package cluster boots and tears down the local test cluster: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler (from the `kube` multi-call binary) and the pod
// runner (`legate-node`), all as host processes, on a bridge of their own.
package cluster

import (
	"fmt"
	"os"
	"path/filepath"
)

// Config is where and how the cluster lives. Zero values are filled by Defaults.
type Config struct {
	// StateDir holds everything the cluster writes: PKI, kubeconfigs, etcd data, logs, PIDs,
	// the pod runner's pods, the image table's programs. Removed by Down. Not under /tmp:
	// containers' programs run from here, and Pods often mount an emptyDir on /tmp.
	StateDir string
	// BinDir holds the binaries `kube` and `legate-node`.
	BinDir string
	// Bridge is the host bridge the pods' veths attach to.
	Bridge string
	// BridgeIP is the host's address on the bridge; the API server and the node's kubelet API
	// listen there, so pods reach them on-link.
	BridgeIP string
	// PodCIDR is the pods' address range (on the bridge only).
	PodCIDR string
	// LBPool is the static addresses a LoadBalancer Service may ask for (bound to one of its
	// pods by the node's load-balancer controller; reachable from the host only).
	LBPool string
	// ServiceCIDR is the range of Service cluster IPs; no kube-proxy serves it, and Up adds a
	// blackhole route for it so a packet to a cluster IP dies on this machine.
	ServiceCIDR string
	// APIServerPort is the API server's secure port on BridgeIP.
	APIServerPort int
	// EtcdPort and EtcdPeerPort are etcd's ports on 127.0.0.1.
	EtcdPort, EtcdPeerPort int
	// NodeName is the name of the cluster's only Node.
	NodeName string
	// KubeletPort is the pod runner's kubelet API port on BridgeIP (logs, exec).
	KubeletPort int
	// Images are image table entries added at Up (pattern → program).
	Images []string
}

// Prefix is the name prefix of everything network-related the cluster creates (bridge, veths
// `lgtv*`, network namespaces `lgt-*`, the nftables table).
const Prefix = "lgt"

// NFTable is the nftables table (family inet) holding the cluster's forwarding guard.
const NFTable = "legate_cluster"

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.StateDir == "" {
		c.StateDir = envOr("LEGATE_CLUSTER_DIR", "/var/lib/legate-cluster")
	}
	if c.Bridge == "" {
		c.Bridge = Prefix + "0"
	}
	if c.BridgeIP == "" {
		c.BridgeIP = "10.244.0.1"
	}
	if c.PodCIDR == "" {
		c.PodCIDR = "10.244.0.0/16"
	}
	if c.LBPool == "" {
		c.LBPool = "10.245.0.0/24"
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = "10.96.0.0/16"
	}
	if c.APIServerPort == 0 {
		c.APIServerPort = 6443
	}
	if c.EtcdPort == 0 {
		c.EtcdPort = 23790
	}
	if c.EtcdPeerPort == 0 {
		c.EtcdPeerPort = 23800
	}
	if c.NodeName == "" {
		c.NodeName = "legate-node"
	}
	if c.KubeletPort == 0 {
		c.KubeletPort = 10250
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func (c *Config) path(parts ...string) string {
	return filepath.Join(append([]string{c.StateDir}, parts...)...)
}

// Kubeconfig is the admin kubeconfig's path.
func (c *Config) Kubeconfig() string { return c.path("kubeconfig") }

// ServerURL is the API server's URL.
func (c *Config) ServerURL() string { return fmt.Sprintf("https://%s:%d", c.BridgeIP, c.APIServerPort) }

// The service CIDR's first address: the `kubernetes` Service's cluster IP.
func (c *Config) apiServiceIP() string {
	ip, _, _ := parseCIDR(c.ServiceCIDR)
	ip[len(ip)-1]++
	return ip.String()
}

// kubeconfig writes a kubeconfig for a client certificate <user>.crt/.key of the PKI.
func (c *Config) writeKubeconfig(path, user string) error {
	pkiDir := c.path("pki")
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: legate
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: legate
  context: {cluster: legate, user: %s}
current-context: legate
`, c.ServerURL(), filepath.Join(pkiDir, "ca.crt"), user, filepath.Join(pkiDir, user+".crt"), filepath.Join(pkiDir, user+".key"), user)
	return os.WriteFile(path, []byte(body), 0o600)
}
