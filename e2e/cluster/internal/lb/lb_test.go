package lb

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func TestChoose(t *testing.T) {
	cases := []struct {
		current string
		ready   []string
		want    string
	}{
		{"", nil, ""},
		{"10.244.0.5", nil, ""},
		{"", []string{"10.244.0.10", "10.244.0.9"}, "10.244.0.9"},
		{"10.244.0.10", []string{"10.244.0.9", "10.244.0.10"}, "10.244.0.10"},
		{"10.244.0.7", []string{"10.244.0.9", "10.244.0.8"}, "10.244.0.8"},
	}
	for _, c := range cases {
		if got := Choose(c.current, c.ready); got != c.want {
			t.Errorf("Choose(%q, %v) = %q, want %q", c.current, c.ready, got, c.want)
		}
	}
}

func TestController(t *testing.T) {
	tru, fls := true, false
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: "fleet"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: "plain"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}
	slice := func(svcName string, eps map[string]*bool) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "gw", Name: svcName + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for ip, r := range eps {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: r}})
		}
		return s
	}
	client := fake.NewClientset(svc, other, slice("fleet", map[string]*bool{"10.244.0.20": &tru, "10.244.0.30": &fls}), slice("plain", map[string]*bool{"10.244.0.40": nil}))
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	go c.Run(ctx)

	waitIngress := func(name, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, err := client.CoreV1().Services("gw").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if ing := s.Status.LoadBalancer.Ingress; len(ing) > 0 {
				got = ing[0].IP
				if ing[0].IPMode == nil || *ing[0].IPMode != corev1.LoadBalancerIPModeVIP {
					t.Errorf("ipMode %v", ing[0].IPMode)
				}
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s ingress = %q, want %q", name, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitIngress("fleet", "10.244.0.20")
	// Another endpoint becomes ready: the address stays.
	upd := func(eps map[string]*bool) {
		if _, err := client.DiscoveryV1().EndpointSlices("gw").Update(ctx, slice("fleet", eps), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	upd(map[string]*bool{"10.244.0.20": &tru, "10.244.0.10": &tru})
	time.Sleep(300 * time.Millisecond)
	waitIngress("fleet", "10.244.0.20")
	// The chosen endpoint is no longer ready: switch.
	upd(map[string]*bool{"10.244.0.20": &fls, "10.244.0.10": &tru})
	waitIngress("fleet", "10.244.0.10")
	// None ready: cleared.
	upd(map[string]*bool{"10.244.0.10": &fls})
	waitIngress("fleet", "")
	waitIngress("plain", "")
}

type fakeVIPs struct {
	mu    sync.Mutex
	bound map[string]Endpoint
}

func (f *fakeVIPs) Bind(ip string, ep Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bound[ip] = ep
	return nil
}

func (f *fakeVIPs) Unbind(ip string, _ Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.bound, ip)
}

func (f *fakeVIPs) get(ip string) (Endpoint, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ep, ok := f.bound[ip]
	return ep, ok
}

func TestStaticAddresses(t *testing.T) {
	tru := true
	svc := func(name, addrs string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "gw", Name: name, Annotations: map[string]string{AddressesAnnotation: addrs}},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		}
	}
	slice := func(svcName, ip, uid string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "gw", Name: svcName + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &tru},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "gw", Name: svcName + "-pod", UID: types.UID(uid)},
			}},
		}
	}
	client := fake.NewClientset(
		svc("a", "10.245.0.10"), slice("a", "10.244.0.20", "uid-a"),
		svc("b", "10.245.0.11,192.0.2.99"), slice("b", "10.244.0.21", "uid-b"),
		svc("c", "10.245.0.10"), slice("c", "10.244.0.22", "uid-c"),
	)
	_, pool, _ := net.ParseCIDR("10.245.0.0/24")
	vips := &fakeVIPs{bound: map[string]Endpoint{}}
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Pool: pool, VIPs: vips})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	go c.Run(ctx)
	ingress := func(name string) []string {
		s, err := client.CoreV1().Services("gw").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, i := range s.Status.LoadBalancer.Ingress {
			out = append(out, i.IP)
		}
		return out
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// a gets its address, bound to its pod.
	eventually("a's static address", func() bool { return slices.Equal(ingress("a"), []string{"10.245.0.10"}) })
	if ep, ok := vips.get("10.245.0.10"); !ok || ep != (Endpoint{IP: "10.244.0.20", PodUID: "uid-a"}) {
		t.Errorf("10.245.0.10 bound to %+v (%v)", ep, ok)
	}
	// b asks for one address outside the pool: nothing at all, nothing bound.
	time.Sleep(300 * time.Millisecond)
	if got := ingress("b"); len(got) != 0 {
		t.Errorf("b ingress = %v, want none", got)
	}
	if _, ok := vips.get("10.245.0.11"); ok {
		t.Error("10.245.0.11 bound although b also asks for an unusable address")
	}
	// c asks for a's address: not usable while a holds it.
	if got := ingress("c"); len(got) != 0 {
		t.Errorf("c ingress = %v, want none (a holds the address)", got)
	}
	// b drops the unusable address: it gets the usable one.
	if _, err := client.CoreV1().Services("gw").Update(ctx, svc("b", "10.245.0.11"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("b's static address", func() bool { return slices.Equal(ingress("b"), []string{"10.245.0.11"}) })
	// a is deleted: its address is released and c, waiting for it, gets it.
	if err := client.CoreV1().Services("gw").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("c's static address", func() bool { return slices.Equal(ingress("c"), []string{"10.245.0.10"}) })
	if ep, _ := vips.get("10.245.0.10"); ep.PodUID != "uid-c" {
		t.Errorf("10.245.0.10 bound to %+v, want c's pod", ep)
	}
	if why := c.Usable("gw/x", "10.246.0.1"); why == "" {
		t.Error("10.246.0.1 outside the pool called usable")
	}
}
