package cluster

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestUpRunsPodsAndDownLeavesNothing boots a cluster in a temporary state directory, runs a
// Deployment whose pods have volumes, a readiness probe and a LoadBalancer Service, then tears
// the cluster down and checks that no process, network namespace, link, route, rule, mount or
// file of it is left. It needs root and the built binaries: LEGATE_CLUSTER_BIN=$(e2e/cluster/build).
func TestUpRunsPodsAndDownLeavesNothing(t *testing.T) {
	bin := os.Getenv("LEGATE_CLUSTER_BIN")
	if bin == "" || os.Geteuid() != 0 {
		t.Skip("SKIPPED: needs root and LEGATE_CLUSTER_BIN=$(e2e/cluster/build) (scripts/cluster-tests sets it)")
	}
	c := &Config{StateDir: t.TempDir() + "/cluster", BinDir: bin}
	c.Defaults()
	if strings.Contains(ipOut("link", "show", c.Bridge), c.Bridge) {
		t.Skipf("SKIPPED: another local cluster is up (bridge %s exists)", c.Bridge)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log bytes.Buffer
	defer func() {
		if t.Failed() {
			t.Log(log.String())
		}
		if err := Down(c, &log); err != nil {
			t.Errorf("down: %v", err)
		}
		if left := Leftovers(c); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), Prefix+"-") {
			t.Errorf("network namespaces left: %s", out)
		}
	}()
	start := time.Now()
	if _, err := Up(ctx, c, &log); err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))
	client, err := c.client()
	if err != nil {
		t.Fatal(err)
	}
	ns := "leftovers"
	must(t, create(ctx, client.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, waitFor(ctx, time.Minute, "default ServiceAccount", func() error {
		_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	}))
	must(t, create(ctx, client.CoreV1().ConfigMaps(ns), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "conf"}, Data: map[string]string{"a.txt": "hello"}}))
	labels := map[string]string{"app": "pause"}
	// CoreDNS's image is mapped to `legate-node dns-whoami` in every cluster.
	must(t, create(ctx, client.AppsV1().Deployments(ns), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "pause"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "pause", Image: "registry.k8s.io/coredns/coredns:v1.12.2",
						VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/legate-leftovers-test"}},
					}},
					Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}}},
				},
			},
		},
	}))
	must(t, waitFor(ctx, 2*time.Minute, "Deployment pause available", func() error {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "pause", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas != 2 {
			return errNotReady
		}
		return nil
	}))
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	must(t, err)
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.Spec.NodeName != c.NodeName {
			t.Errorf("pod %s: podIP %q nodeName %q", p.Name, p.Status.PodIP, p.Spec.NodeName)
		}
	}
	if n := len(podNetns()); n < 2 {
		t.Errorf("%d pod network namespaces, want 2", n)
	}
}

type creator[T any] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
}

func create[T any](ctx context.Context, c creator[T], obj T) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
