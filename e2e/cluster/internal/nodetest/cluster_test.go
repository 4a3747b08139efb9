package nodetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"legate.dev/e2e/cluster/internal/images"
)

const testImage = "legate-node-e2e/http:1"

func setup(t *testing.T) (*kubernetes.Clientset, *rest.Config) {
	t.Helper()
	kc, table := os.Getenv("LEGATE_E2E_KUBECONFIG"), os.Getenv("LEGATE_E2E_IMAGES")
	if kc == "" || table == "" {
		t.Skip("set LEGATE_E2E_KUBECONFIG and LEGATE_E2E_IMAGES (a cluster from e2e/cluster/up) to run")
	}
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs /usr/bin/python3 (world-executable)")
	}
	tb, err := images.Load(table)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.Lookup(testImage); !ok {
		tb.Images = append(tb.Images, images.Entry{Image: "legate-node-e2e/http:*", Entrypoint: []string{python, "-m", "http.server", "8080"}})
		if err := tb.Save(table); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			tb, err := images.Load(table)
			if err != nil {
				return
			}
			kept := tb.Images[:0]
			for _, e := range tb.Images {
				if e.Image != "legate-node-e2e/http:*" {
					kept = append(kept, e)
				}
			}
			tb.Images = kept
			_ = tb.Save(table)
		})
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg), cfg
}

func poll(t *testing.T, what string, timeout time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := f()
		if ok {
			return
		}
		last = msg
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out (%s) waiting for %s: %s", timeout, what, last)
}

func TestDeploymentServiceLogsExecDelete(t *testing.T) {
	client, cfg := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("legate-node-e2e-%d", time.Now().Unix()%100000)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	labels := map[string]string{"app": "web"}
	replicas, grace := int32(2), int64(5)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "http", Image: testImage,
						Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}, PeriodSeconds: 1},
						Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}},
					}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	poll(t, "Deployment Available with 2 ready replicas", 90*time.Second, func() (bool, string) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		avail := false
		for _, c := range d.Status.Conditions {
			avail = avail || (c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue)
		}
		return avail && d.Status.ReadyReplicas == 2, fmt.Sprintf("%+v", d.Status)
	})
	t.Logf("Deployment available after %s", time.Since(start).Round(time.Millisecond))
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("pods: %v %d", err, len(pods.Items))
	}
	podIPs := map[string]string{}
	for _, p := range pods.Items {
		podIPs[p.Status.PodIP] = p.Name
		cs := p.Status.ContainerStatuses[0]
		t.Logf("pod %s ip %s hostIP %s containerID %s phase %s", p.Name, p.Status.PodIP, p.Status.HostIP, cs.ContainerID, p.Status.Phase)
		if !strings.HasPrefix(cs.ContainerID, "legate://") || cs.State.Running == nil || !cs.Ready || p.Status.StartTime == nil {
			t.Errorf("pod %s container status %+v", p.Name, cs)
		}
	}
	poll(t, "EndpointSlice listing both pod IPs ready", 30*time.Second, func() (bool, string) {
		sl, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return false, err.Error()
		}
		ready := map[string]bool{}
		for _, s := range sl.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					for _, a := range e.Addresses {
						ready[a] = true
					}
				}
			}
		}
		for ip := range podIPs {
			if !ready[ip] {
				return false, fmt.Sprintf("ready %v, pods %v", ready, podIPs)
			}
		}
		return true, ""
	})
	var lbIP string
	poll(t, "LoadBalancer ingress", 30*time.Second, func() (bool, string) {
		s, err := client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
			return false, fmt.Sprint(err)
		}
		lbIP = s.Status.LoadBalancer.Ingress[0].IP
		return podIPs[lbIP] != "", "ingress " + lbIP + " is not a pod IP"
	})
	lbPod := podIPs[lbIP]
	since := time.Now().Add(-time.Second).Truncate(time.Second)
	httpc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := httpc.Get("http://" + net.JoinHostPort(lbIP, "8080") + "/legate-node-e2e-probe")
	if err != nil {
		t.Fatalf("GET via the load balancer IP %s: %v", lbIP, err)
	}
	resp.Body.Close()
	t.Logf("GET http://%s:8080/ → %s (pod %s)", lbIP, resp.Status, lbPod)

	// kubectl logs --since-time (through the API server's pods/log proxy to the kubelet API).
	sinceTime := metav1.NewTime(since)
	poll(t, "the request in the pod's log since "+since.Format(time.RFC3339), 15*time.Second, func() (bool, string) {
		b, err := client.CoreV1().Pods(ns).GetLogs(lbPod, &corev1.PodLogOptions{SinceTime: &sinceTime, Timestamps: true}).DoRaw(ctx)
		return err == nil && strings.Contains(string(b), "GET /legate-node-e2e-probe"), fmt.Sprintf("%v: %s", err, b)
	})
	future := metav1.NewTime(time.Now().Add(time.Hour))
	if b, err := client.CoreV1().Pods(ns).GetLogs(lbPod, &corev1.PodLogOptions{SinceTime: &future}).DoRaw(ctx); err != nil || len(b) != 0 {
		t.Errorf("logs since the future: %q %v", b, err)
	}
	tail := int64(1)
	if b, err := client.CoreV1().Pods(ns).GetLogs(lbPod, &corev1.PodLogOptions{TailLines: &tail}).DoRaw(ctx); err != nil || strings.Count(string(b), "\n") != 1 {
		t.Errorf("logs --tail=1: %q %v", b, err)
	}

	// kubectl exec: the pod's /etc/hosts names the Service.
	out, err := execIn(ctx, client, cfg, ns, lbPod, []string{"cat", "/etc/hosts"})
	if err != nil {
		t.Errorf("exec: %v", err)
	} else {
		for ip := range podIPs {
			if !strings.Contains(out, ip+"\tweb."+ns+".svc web."+ns+".svc.cluster.local web web."+ns) {
				t.Errorf("/etc/hosts lacks the Service line for %s:\n%s", ip, out)
			}
		}
	}

	// Graceful deletion of the load balancer's pod: it goes, the ingress moves to a ready pod.
	delStart := time.Now()
	if err := client.CoreV1().Pods(ns).Delete(ctx, lbPod, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the deleted pod gone from the API", 30*time.Second, func() (bool, string) {
		_, err := client.CoreV1().Pods(ns).Get(ctx, lbPod, metav1.GetOptions{})
		return err != nil, "still there"
	})
	took := time.Since(delStart)
	t.Logf("pod deleted in %s (preStop sleep 1 s, grace 5 s)", took.Round(time.Millisecond))
	if took < time.Second || took > 8*time.Second {
		t.Errorf("deletion took %s", took)
	}
	poll(t, "ingress on another ready pod", 60*time.Second, func() (bool, string) {
		s, err := client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
			return false, fmt.Sprint(err)
		}
		ip := s.Status.LoadBalancer.Ingress[0].IP
		if ip == lbIP {
			return false, "still " + ip
		}
		r, err := httpc.Get("http://" + net.JoinHostPort(ip, "8080") + "/")
		if err != nil {
			return false, err.Error()
		}
		r.Body.Close()
		return r.StatusCode == 200, r.Status
	})
	poll(t, "Deployment back to 2 ready replicas", 60*time.Second, func() (bool, string) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2 && d.Status.Replicas == 2, fmt.Sprintf("%v %+v", err, d.Status)
	})
}

func execIn(ctx context.Context, client *kubernetes.Clientset, cfg *rest.Config, ns, pod string, cmd []string) (string, error) {
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return "", err
	}
	var out, errb bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, errb.String())
	}
	_, _ = io.Copy(io.Discard, &errb)
	return out.String(), nil
}
