package hostsdns

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRender(t *testing.T) {
	pod := Pod{Name: "envoy-abc", Namespace: "gw", IP: "10.244.0.9",
		Aliases: []corev1.HostAlias{{IP: "10.244.0.50", Hostnames: []string{"foo.local", "bar.local"}}}}
	services := []Service{
		{Namespace: "legate-system", Name: "legate", IPs: []string{"10.244.0.10", "10.244.0.3"}},
		{Namespace: "gw", Name: "echo", IPs: []string{"10.244.0.4"}},
		{Namespace: "gw", Name: "empty"},
		{Namespace: "default", Name: "kubernetes", IPs: []string{"10.244.0.1"}},
	}
	got := string(Render(pod, "10.244.0.1", services))
	want := `# Kubernetes-managed hosts file (legate-node hosts-file DNS).
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
10.244.0.9	envoy-abc
10.244.0.1	kubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local
10.244.0.4	echo.gw.svc echo.gw.svc.cluster.local echo echo.gw
10.244.0.3	legate.legate-system.svc legate.legate-system.svc.cluster.local
10.244.0.10	legate.legate-system.svc legate.legate-system.svc.cluster.local
# Entries added by HostAliases.
10.244.0.50	foo.local	bar.local
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	sub := string(Render(Pod{Name: "web-0", Namespace: "ns", IP: "10.244.0.5", Hostname: "web-0", Subdomain: "web"}, "", nil))
	if want := "10.244.0.5\tweb-0.web.ns.svc.cluster.local\tweb-0\n"; !strings.Contains(sub, want) {
		t.Errorf("subdomain pod: %q lacks %q", sub, want)
	}
}

func TestFromSlices(t *testing.T) {
	tru, fls := true, false
	slice := func(ns, svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
		}
	}
	ep := func(ip string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	got := FromSlices([]*discoveryv1.EndpointSlice{
		slice("a", "s1", ep("10.244.0.3", &tru), ep("10.244.0.2", nil), ep("10.244.0.9", &fls)),
		slice("a", "s1", ep("10.244.0.4", &tru)),
		slice("b", "s2", ep("10.244.0.5", &fls)),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "unlabelled"}, Endpoints: []discoveryv1.Endpoint{ep("10.244.0.6", nil)}},
	})
	want := []Service{
		{Namespace: "a", Name: "s1", IPs: []string{"10.244.0.2", "10.244.0.3", "10.244.0.4"}},
		{Namespace: "b", Name: "s2", IPs: []string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
