// Package hostsdns is the test cluster's name service: there is no cluster DNS and no
// kube-proxy, so every pod's /etc/hosts (a file of the pod bind-mounted over /etc/hosts, and
// rewritten in place when EndpointSlices change) maps each Service's names to the IPs of its
// ready endpoints, as a headless Service's DNS records would:
//
//	<ip> <svc>.<ns>.svc <svc>.<ns>.svc.cluster.local [<svc> <svc>.<ns>]
//
// (the short names only for Services of the pod's own namespace), one line per ready endpoint,
// plus localhost, the pod's own name and the API server (`kubernetes.default.svc…` → the bridge
// address).
//
// Envoy resolves such names: its c-ares resolver reads /etc/hosts before DNS (checked with
// Envoy 1.40: a STRICT_DNS cluster on a name with two hosts lines gets both addresses, and a
// name absent from the file fails at once against the pod's `nameserver 127.0.0.1`). c-ares
// re-reads the file only about once a minute: an Envoy sees a changed endpoint (e.g. a new
// xDS server pod) up to ~60 s late (observed 55-59 s with dns_refresh_rate 1 s).
//
// Limitation: a name maps to pod IPs, so a Service is reachable by name only on its
// targetPort: a Service whose port differs from its targetPort is not reachable on its port.
// Service ClusterIPs are not routed at all.
package hostsdns

import (
	"bytes"
	"fmt"
	"net"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Service is one Service's ready endpoint addresses.
type Service struct {
	Namespace, Name string
	IPs             []string
}

// Pod is what a pod's hosts file says about the pod itself.
type Pod struct {
	Name, Namespace, IP string
	// Hostname and Subdomain are the pod spec's (empty: the pod name, no subdomain).
	Hostname, Subdomain string
	Aliases             []corev1.HostAlias
}

// Render returns the hosts file of pod p.
func Render(p Pod, apiserverIP string, services []Service) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file (legate-node hosts-file DNS).\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	if p.IP != "" {
		host := p.Hostname
		if host == "" {
			host = p.Name
		}
		if p.Subdomain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.cluster.local\t%s\n", p.IP, host, p.Subdomain, p.Namespace, host)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", p.IP, host)
		}
	}
	if apiserverIP != "" {
		fmt.Fprintf(&b, "%s\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local\n", apiserverIP)
	}
	svcs := append([]Service(nil), services...)
	sort.Slice(svcs, func(i, j int) bool {
		if svcs[i].Namespace != svcs[j].Namespace {
			return svcs[i].Namespace < svcs[j].Namespace
		}
		return svcs[i].Name < svcs[j].Name
	})
	for _, s := range svcs {
		if s.Namespace == "default" && s.Name == "kubernetes" {
			continue
		}
		names := fmt.Sprintf("%s.%s.svc %s.%s.svc.cluster.local", s.Name, s.Namespace, s.Name, s.Namespace)
		if s.Namespace == p.Namespace {
			names += fmt.Sprintf(" %s %s.%s", s.Name, s.Name, s.Namespace)
		}
		for _, ip := range SortedIPs(s.IPs) {
			fmt.Fprintf(&b, "%s\t%s\n", ip, names)
		}
	}
	for _, a := range p.Aliases {
		if len(a.Hostnames) == 0 {
			continue
		}
		fmt.Fprintf(&b, "# Entries added by HostAliases.\n%s", a.IP)
		for _, h := range a.Hostnames {
			fmt.Fprintf(&b, "\t%s", h)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// SortedIPs sorts addresses numerically, without duplicates.
func SortedIPs(ips []string) []string {
	out := make([]string, 0, len(ips))
	seen := map[string]bool{}
	for _, s := range ips {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := net.ParseIP(out[i]), net.ParseIP(out[j])
		if a == nil || b == nil {
			return out[i] < out[j]
		}
		return bytes.Compare(a.To16(), b.To16()) < 0
	})
	return out
}
