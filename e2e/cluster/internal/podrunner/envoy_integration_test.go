package podrunner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"legate.dev/e2e/cluster/internal/hostsdns"
	"legate.dev/e2e/cluster/internal/images"
)

const envoyBootstrap = `admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 19000}}
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 0.0.0.0, port_value: 80}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/ready"}
                direct_response: {status: 200, body: {inline_string: "ready"}}
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "legate-ok"}}
  clusters:
  - name: xds
    type: STRICT_DNS
    connect_timeout: 1s
    dns_lookup_family: V4_ONLY
    dns_refresh_rate: 1s
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: legate.legate-system.svc, port_value: 18000}}}
`

func findEnvoy() string {
	for _, p := range []string{os.Getenv("LEGATE_ENVOY"), "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/envoy/_bin/envoy"} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// TestEnvoyPod runs an Envoy pod shaped like Legate's fleet pods: uid 65532, read-only root,
// no privilege escalation, port 80 through the pod's ip_unprivileged_port_start sysctl, a
// Secret of mode 0440 readable through fsGroup, `envoy` resolved through the image table,
// $(POD_NAME) in its args, readiness on an HTTP path, a preStop sleep; its STRICT_DNS cluster
// resolves a Service name through the pod's hosts file.
func TestEnvoyPod(t *testing.T) {
	envoy := findEnvoy()
	if envoy == "" {
		t.Skip("no Envoy binary (LEGATE_ENVOY)")
	}
	env := newTestEnv(t)
	p, rec, ctx := env.p, env.rec, env.ctx
	// uid 65532 must be able to execute it: use a world-readable copy outside /root.
	bin := filepath.Join(t.TempDir(), "envoy")
	data, err := os.ReadFile(envoy)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(bin); d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	table, _ := images.Load(p.cfg.ImagesPath)
	table.Images = append(table.Images, images.Entry{Image: "docker.io/envoyproxy/envoy:*", Entrypoint: []string{bin}, Commands: map[string]string{"envoy": bin}})
	if err := table.Save(p.cfg.ImagesPath); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.CoreV1().ConfigMaps("ns").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gw-envoy"},
		Data: map[string]string{"bootstrap.yaml": envoyBootstrap}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.CoreV1().Secrets("ns").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gw-xds-client"},
		Data: map[string][]byte{"tls.key": []byte("KEY")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.SetServices([]hostsdns.Service{{Namespace: "legate-system", Name: "legate", IPs: []string{"10.251.7.77", "10.251.7.78"}}})
	uid, no, yes, grace := int64(65532), false, true, int64(6)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gw-envoy-abc", UID: "4f9c1a5b-6d7e-8f90-a1b2-c3d4e5f6a7b8"},
		Spec: corev1.PodSpec{
			NodeName: "test-node", RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid,
				Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}},
			Volumes: []corev1.Volume{
				{Name: "bootstrap", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gw-envoy"}}}},
				{Name: "xds-client-cert", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "gw-xds-client", DefaultMode: i32(0o440)}}},
			},
			Containers: []corev1.Container{{
				Name: "envoy", Image: "docker.io/envoyproxy/envoy:v1.40.0",
				Command: []string{"envoy"},
				Args:    []string{"-c", "/etc/lgt-podrunner-test/envoy/bootstrap.yaml", "--service-node", "$(POD_NAME)", "--log-level", "warning", "--drain-time-s", "1", "--drain-strategy", "immediate"},
				Env:     []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(80)}},
					PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 2},
				Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes, RunAsNonRoot: &yes,
					RunAsUser: &uid, RunAsGroup: &uid, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "bootstrap", MountPath: "/etc/lgt-podrunner-test/envoy", ReadOnly: true},
					{Name: "xds-client-cert", MountPath: "/etc/lgt-podrunner-test/xds", ReadOnly: true},
				},
			}},
		},
	}
	if err := p.CreatePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	key := "ns/gw-envoy-abc"
	waitFor(t, "Envoy pod Ready", 30*time.Second, func() (bool, string) {
		cur := rec.get(key)
		if cur == nil {
			return false, "no status"
		}
		return condition(cur, corev1.PodReady) == corev1.ConditionTrue, fmt.Sprintf("%+v", cur.Status.ContainerStatuses)
	})
	ip := rec.get(key).Status.PodIP
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := hc.Get("http://" + net.JoinHostPort(ip, "80") + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "legate-ok" {
		t.Errorf("GET / on port 80 = %q", body)
	}
	r, c, err := p.container("ns", "gw-envoy-abc", "envoy")
	if err != nil {
		t.Fatal(err)
	}
	run := func(argv ...string) string {
		var out bytes.Buffer
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		code, err := r.execInContainer(ectx, c, argv, nil, &out, &out)
		if err != nil || code != 0 {
			t.Errorf("exec %v: %d %v: %s", argv, code, err, out.String())
		}
		return out.String()
	}
	if got := run("cat", "/etc/lgt-podrunner-test/xds/tls.key"); got != "KEY" {
		t.Errorf("0440 secret as uid 65532 with fsGroup: %q", got)
	}
	waitFor(t, "the xds cluster resolved through /etc/hosts", 10*time.Second, func() (bool, string) {
		out := run("curl", "-s", "http://127.0.0.1:19000/clusters")
		return strings.Contains(out, "xds::10.251.7.77:18000::hostname::legate.legate-system.svc") &&
			strings.Contains(out, "xds::10.251.7.78:18000::hostname::legate.legate-system.svc"), out
	})
	if got := run("curl", "-s", "http://127.0.0.1:19000/server_info"); !strings.Contains(got, `"service_node": "gw-envoy-abc"`) {
		t.Errorf("Envoy's node id is not the pod name ($(POD_NAME)):\n%.400s", got)
	}
	// A changed endpoint reaches Envoy through the rewritten hosts file, within about a minute:
	// c-ares re-reads /etc/hosts only that often (observed: 55 s with dns_refresh_rate 1 s).
	if !testing.Short() {
		p.SetServices([]hostsdns.Service{{Namespace: "legate-system", Name: "legate", IPs: []string{"10.251.7.79"}}})
		changed := time.Now()
		waitFor(t, "Envoy re-resolving after the hosts file changed", 90*time.Second, func() (bool, string) {
			out := run("curl", "-s", "http://127.0.0.1:19000/clusters")
			return strings.Contains(out, "xds::10.251.7.79:18000") && !strings.Contains(out, "xds::10.251.7.77:18000"), out
		})
		t.Logf("Envoy saw the hosts file change after %s", time.Since(changed).Round(time.Second))
	}

	del := pod.DeepCopy()
	now := metav1.Now()
	del.DeletionTimestamp, del.DeletionGracePeriodSeconds = &now, &grace
	start := time.Now()
	if err := p.DeletePod(ctx, del); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Envoy pod forgotten", 20*time.Second, func() (bool, string) { return p.find("ns", "gw-envoy-abc") == nil, "still known" })
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Errorf("deletion took %s (preStop sleep 1 s, then SIGTERM)", took)
	}
	cs := containerStatus(rec.get(key), "envoy")
	t.Logf("Envoy final state: %+v", cs.State.Terminated)
}
