package podrunner

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// loopbackPod is a pod whose IP is 127.0.0.1, for probes against local servers.
func loopbackPod() *podRun {
	return &podRun{ip: net.ParseIP("127.0.0.1"), pod: &corev1.Pod{}}
}

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func TestHTTPProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Probe") != "yes" || r.Host != "probe.example" {
				w.WriteHeader(http.StatusBadRequest)
			}
		case "/redirect":
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port := hostPort(t, srv.Listener.Addr().String())
	r := loopbackPod()
	c := &ctrRun{spec: corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}}
	cases := []struct {
		path string
		port intstr.IntOrString
		want bool
	}{
		{"/ok", intstr.FromString("http"), true},
		{"ok", intstr.FromInt32(int32(port)), true},
		{"/redirect", intstr.FromString("http"), true},
		{"/down", intstr.FromString("http"), false},
	}
	for _, cse := range cases {
		ok, err := r.httpGet(context.Background(), c, &corev1.HTTPGetAction{Path: cse.path, Port: cse.port,
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "probe.example"}}})
		if ok != cse.want {
			t.Errorf("GET %s: %v (%v), want %v", cse.path, ok, err, cse.want)
		}
	}
	if _, err := r.httpGet(context.Background(), c, &corev1.HTTPGetAction{Port: intstr.FromString("nope")}); err == nil {
		t.Error("unknown named port: no error")
	}
	if ok, _ := r.tcpDial(context.Background(), c, "", intstr.FromString("http")); !ok {
		t.Error("tcp probe on a listening port failed")
	}
	srv.Close()
	if ok, _ := r.tcpDial(context.Background(), c, "", intstr.FromString("http")); ok {
		t.Error("tcp probe on a closed port succeeded")
	}
}

func TestGRPCProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(l)
	defer s.Stop()
	_, port := hostPort(t, l.Addr().String())
	r := loopbackPod()
	down := "down"
	if ok, err := r.grpcHealth(context.Background(), &corev1.GRPCAction{Port: int32(port)}); !ok {
		t.Errorf("serving: %v", err)
	}
	if ok, _ := r.grpcHealth(context.Background(), &corev1.GRPCAction{Port: int32(port), Service: &down}); ok {
		t.Error("not serving reported healthy")
	}
}
