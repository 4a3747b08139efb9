package lb

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	c := New(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
