package podrunner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"legate.dev/e2e/cluster/internal/hostsdns"
	"legate.dev/e2e/cluster/internal/images"
	"legate.dev/e2e/cluster/internal/shim"
)

// The test binary is also the shim and the pause program (as legate-node is).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case shim.Subcommand:
			shim.Main()
		case "pause":
			ch := make(chan os.Signal, 1)
			signalNotify(ch)
			<-ch
			os.Exit(0)
		case "crash-runner":
			crashRunner()
		}
	}
	os.Exit(m.Run())
}

const (
	testBridge  = "lgttbr0"
	testNetns   = "lgtt-"
	testVeth    = "lgtw"
	testCIDR    = "10.251.7.0/24"
	testHostIP  = "10.251.7.1"
	testMountCM = "/etc/lgt-podrunner-test/config"
)

func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root and ip netns: runs pods in network namespaces on a test bridge")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs root and ip netns: no `ip` command")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 (the pod's web server)")
	}
}

// recorder keeps the statuses the provider pushes.
type recorder struct {
	mu   sync.Mutex
	pods map[string]*corev1.Pod
}

func (r *recorder) set(p *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods[p.Namespace+"/"+p.Name] = p.DeepCopy()
}

func (r *recorder) get(key string) *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pods[key]
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	if p == nil {
		return nil
	}
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func condition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func setupBridge(t *testing.T) {
	t.Helper()
	_ = exec.Command("ip", "link", "del", testBridge).Run()
	for _, args := range [][]string{
		{"link", "add", testBridge, "type", "bridge"},
		{"addr", "add", testHostIP + "/24", "dev", testBridge},
		{"link", "set", testBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", testBridge).Run() })
}

type testEnv struct {
	p      *Provider
	client *fake.Clientset
	rec    *recorder
	cidr   *net.IPNet
	ctx    context.Context
	state  string
}

// newTestEnv makes a provider on a test bridge with a fake API (ConfigMaps web and
// kube-root-ca.crt, tokens) and the image table test/python, test/sh.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	needNetns(t)
	if _, err := os.Stat(filepath.Dir(testMountCM)); err == nil {
		t.Fatalf("%s exists on the host: the test needs it absent", filepath.Dir(testMountCM))
	}
	setupBridge(t)
	state := t.TempDir()
	table := &images.Table{Images: []images.Entry{
		{Image: "test/python:*", Entrypoint: []string{"/usr/bin/python3"}},
		{Image: "test/sh:*", Entrypoint: []string{"/bin/sh"}, Commands: map[string]string{"sh": "/bin/sh"}},
	}}
	imagesPath := filepath.Join(state, "images.json")
	if err := table.Save(imagesPath); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}, Data: map[string]string{"greeting": "hello v1"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": "CA"}},
	)
	client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authv1.TokenRequest).DeepCopy()
		tr.Status.Token = "test-token"
		tr.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Hour))
		return true, tr, nil
	})
	_, cidr, _ := net.ParseCIDR(testCIDR)
	logBuf := &syncWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, Config{
		NodeName: "test-node", StateDir: state, ImagesPath: imagesPath,
		Bridge: testBridge, HostIP: net.ParseIP(testHostIP), PodCIDR: cidr,
		APIServerHost: testHostIP, APIServerPort: 6443,
		Self: os.Args[0], SelfArgs: []string{shim.Subcommand},
		Source: &ClientSource{Client: client}, Client: client,
		NetnsPrefix: testNetns, VethPrefix: testVeth, Resync: 300 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Shutdown(10 * time.Second)
		cancel()
		if err := cleanup(state, testNetns, testVeth); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if _, err := os.Stat(filepath.Dir(testMountCM)); err == nil {
			t.Errorf("cleanup left %s", filepath.Dir(testMountCM))
		}
		if t.Failed() || os.Getenv("PODRUNNER_TEST_LOG") != "" {
			logBuf.mu.Lock()
			t.Logf("runner log:\n%s", logBuf.w.(*bytes.Buffer).String())
			logBuf.mu.Unlock()
		}
	})
	rec := &recorder{pods: map[string]*corev1.Pod{}}
	p.NotifyPods(ctx, rec.set)
	return &testEnv{p: p, client: client, rec: rec, cidr: cidr, ctx: ctx, state: state}
}

func TestPodLifecycle(t *testing.T) {
	env := newTestEnv(t)
	p, client, rec, cidr, ctx := env.p, env.client, env.rec, env.cidr, env.ctx
	uid65532 := int64(65532)
	grace := int64(5)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1", UID: "0b5e7c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName: "test-node", RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace,
			SecurityContext: &corev1.PodSecurityContext{
				Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
				FSGroup: &uid65532,
			},
			Volumes: []corev1.Volume{
				{Name: "web", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}}}},
				{Name: "cert", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "later", DefaultMode: i32(0o440)}}},
				{Name: "sa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: i64(3607)}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				}}}},
			},
			Containers: []corev1.Container{
				{
					Name: "web", Image: "test/python:3",
					Args:       []string{"-m", "http.server", "8080", "--bind", "0.0.0.0"},
					WorkingDir: testMountCM,
					Ports:      []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					VolumeMounts: []corev1.VolumeMount{
						{Name: "web", MountPath: testMountCM},
						{Name: "sa", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"},
					},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/greeting", Port: intstr.FromString("http")}}, PeriodSeconds: 1},
				},
				{
					Name: "sh", Image: "test/sh:latest",
					Command: []string{"sh", "-c", `echo "hello $(POD_NAME) as $(id -u):$(id -G)"; trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.2; done`},
					Env:     []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
					SecurityContext: &corev1.SecurityContext{RunAsUser: &uid65532, RunAsGroup: &uid65532,
						AllowPrivilegeEscalation: new(bool)},
					VolumeMounts: []corev1.VolumeMount{{Name: "cert", MountPath: "/etc/lgt-podrunner-test/cert"}},
				},
			},
		},
	}
	if err := p.CreatePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	crash := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "crash-1", UID: "1c6f8d2e-3a4b-5c6d-9e0f-1a2b3c4d5e6f"},
		Spec: corev1.PodSpec{NodeName: "test-node", RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "crasher", Image: "test/sh:latest", Command: []string{"sh", "-c", "echo crashing; exit 3"}}}},
	}
	if err := p.CreatePod(ctx, crash); err != nil {
		t.Fatal(err)
	}
	key := "ns/web-1"

	// The Secret does not exist yet: the pod waits, naming it.
	waitFor(t, "ContainerCreating naming the missing secret", 10*time.Second, func() (bool, string) {
		cs := containerStatus(rec.get(key), "web")
		if cs == nil || cs.State.Waiting == nil {
			return false, fmt.Sprintf("%+v", cs)
		}
		return cs.State.Waiting.Reason == "ContainerCreating" && strings.Contains(cs.State.Waiting.Message, `"ns/later"`), cs.State.Waiting.Message
	})
	if _, err := client.CoreV1().Secrets("ns").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "later"},
		Data: map[string][]byte{"tls.key": []byte("KEY")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Running and Ready (readiness probe on the named port).
	waitFor(t, "pod Running and Ready", 20*time.Second, func() (bool, string) {
		cur := rec.get(key)
		if cur == nil {
			return false, "no status"
		}
		return cur.Status.Phase == corev1.PodRunning && condition(cur, corev1.PodReady) == corev1.ConditionTrue,
			fmt.Sprintf("phase %s ready %s statuses %+v", cur.Status.Phase, condition(cur, corev1.PodReady), cur.Status.ContainerStatuses)
	})
	cur := rec.get(key)
	podIP := cur.Status.PodIP
	if !cidr.Contains(net.ParseIP(podIP)) || podIP == testHostIP || cur.Status.HostIP != testHostIP || cur.Status.StartTime == nil {
		t.Fatalf("podIP %q hostIP %q startTime %v", podIP, cur.Status.HostIP, cur.Status.StartTime)
	}
	for _, c := range cur.Status.ContainerStatuses {
		if !strings.HasPrefix(c.ContainerID, "legate://") && c.State.Running != nil {
			t.Errorf("container %s id %q", c.Name, c.ContainerID)
		}
	}

	// The pod answers from the host, serving the ConfigMap's file.
	get := func(path string) (string, error) {
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
		resp, err := client.Get("http://" + net.JoinHostPort(podIP, "8080") + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	if body, err := get("/greeting"); err != nil || body != "hello v1" {
		t.Fatalf("GET /greeting = %q, %v", body, err)
	}

	// ConfigMap updates reach the files.
	if _, err := client.CoreV1().ConfigMaps("ns").Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Data: map[string]string{"greeting": "hello v2"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the updated ConfigMap served", 10*time.Second, func() (bool, string) {
		body, err := get("/greeting")
		return body == "hello v2", fmt.Sprintf("%q %v", body, err)
	})

	// Inside the pod: hosts file, sysctl, credentials, files, no default route.
	run := func(container string, argv ...string) string {
		t.Helper()
		r, c, err := p.container("ns", "web-1", container)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
		defer ecancel()
		code, err := r.execInContainer(ectx, c, argv, nil, &out, &out)
		if err != nil || code != 0 {
			t.Fatalf("exec %v: %d %v: %s", argv, code, err, out.String())
		}
		return out.String()
	}
	hosts := run("web", "cat", "/etc/hosts")
	if !strings.Contains(hosts, podIP+"\tweb-1") || !strings.Contains(hosts, testHostIP+"\tkubernetes ") {
		t.Errorf("hosts file:\n%s", hosts)
	}
	p.SetServices([]hostsdns.Service{{Namespace: "ns", Name: "echo", IPs: []string{"10.251.7.99"}}})
	if hosts := run("web", "cat", "/etc/hosts"); !strings.Contains(hosts, "10.251.7.99\techo.ns.svc echo.ns.svc.cluster.local echo echo.ns") {
		t.Errorf("hosts file after SetServices:\n%s", hosts)
	}
	if v := strings.TrimSpace(run("web", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")); v != "0" {
		t.Errorf("pod sysctl = %q, want 0", v)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); strings.TrimSpace(string(v)) == "0" {
		t.Error("the pod's sysctl leaked to the host")
	}
	if routes := run("web", "ip", "route"); strings.Contains(routes, "default") {
		t.Errorf("pod has a default route:\n%s", routes)
	}
	if got := run("sh", "cat", "/etc/lgt-podrunner-test/cert/tls.key"); got != "KEY" {
		t.Errorf("secret file read as 65532 (mode 0440, fsGroup) = %q", got)
	}
	if tok := run("web", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"); tok != "test-token" {
		t.Errorf("token = %q", tok)
	}
	if env := run("web", "env"); !strings.Contains(env, "KUBERNETES_SERVICE_HOST="+testHostIP) || !strings.Contains(env, "HOSTNAME=web-1") || strings.Contains(env, "GOPATH") {
		t.Errorf("env:\n%s", env)
	}
	if hn := strings.TrimSpace(run("web", "hostname")); hn != "web-1" {
		t.Errorf("hostname %q", hn)
	}

	// Logs: timestamped lines, $(VAR) expanded, credentials applied.
	logs := func(container string, opts api.ContainerLogOpts) string {
		rc, err := p.GetContainerLogs(ctx, "ns", "web-1", container, opts)
		if err != nil {
			t.Fatalf("logs %s: %v", container, err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	waitFor(t, "the sh container's greeting in its log", 10*time.Second, func() (bool, string) {
		l := logs("sh", api.ContainerLogOpts{Timestamps: true})
		return regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT[0-9:.]+Z hello web-1 as 65532:65532$`).MatchString(l), l
	})
	if l := logs("web", api.ContainerLogOpts{SinceTime: time.Now().Add(time.Hour)}); l != "" {
		t.Errorf("logs since the future = %q", l)
	}

	// The crasher restarts with back-off; its previous log is kept.
	waitFor(t, "crasher restarted", 15*time.Second, func() (bool, string) {
		cs := containerStatus(rec.get("ns/crash-1"), "crasher")
		return cs != nil && cs.RestartCount >= 1 && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode == 3,
			fmt.Sprintf("%+v", cs)
	})
	if rc, err := p.GetContainerLogs(ctx, "ns", "crash-1", "crasher", api.ContainerLogOpts{Previous: true}); err != nil {
		t.Errorf("previous log: %v", err)
	} else if b, _ := io.ReadAll(rc); string(b) != "crashing\n" {
		t.Errorf("previous log = %q", b)
	}
	if cur := rec.get("ns/crash-1"); cur.Status.Phase != corev1.PodRunning || condition(cur, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("phase %s ready %s while a container restarts", cur.Status.Phase, condition(cur, corev1.PodReady))
	}
	if err := p.DeletePod(ctx, crash); err != nil {
		t.Fatal(err)
	}

	// Deletion: SIGTERM (the trap exits 0), then nothing is left.
	r := p.find("ns", "web-1")
	var pids []int
	for _, c := range r.ctrs {
		r.mu.Lock()
		if c.inst != nil {
			pids = append(pids, c.inst.pid)
		}
		r.mu.Unlock()
	}
	del := pod.DeepCopy()
	now := metav1.Now()
	del.DeletionTimestamp, del.DeletionGracePeriodSeconds = &now, &grace
	start := time.Now()
	if err := p.DeletePod(ctx, del); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod forgotten", 15*time.Second, func() (bool, string) {
		return p.find("ns", "web-1") == nil, "still known"
	})
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("deletion took %s: SIGTERM should stop every container at once", took)
	}
	final := rec.get(key)
	if cs := containerStatus(final, "sh"); cs == nil || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
		t.Errorf("sh final state %+v (want exit 0 from its TERM trap)", cs)
	}
	if cs := containerStatus(final, "web"); cs == nil || cs.State.Terminated == nil {
		t.Errorf("web final state %+v", cs)
	}
	if final.Status.Phase != corev1.PodFailed && final.Status.Phase != corev1.PodSucceeded {
		t.Errorf("final phase %s", final.Status.Phase)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z") {
				t.Errorf("process %d survived the pod", pid)
			}
		}
	}
	if _, err := os.Stat(netnsPath(r.netns)); err == nil {
		t.Errorf("netns %s left", r.netns)
	}
	if _, err := net.InterfaceByName(r.veth); err == nil {
		t.Errorf("veth %s left", r.veth)
	}
	if _, err := os.Stat(r.dir); err == nil {
		t.Errorf("pod directory %s left", r.dir)
	}
	if owners := p.ipam.Owners(); len(owners) != 0 {
		t.Errorf("leases left: %v", owners)
	}
	deleted := false
	for _, a := range client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			deleted = true
		}
	}
	if !deleted {
		t.Error("the terminated pod was not deleted from the API")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
