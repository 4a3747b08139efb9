package podrunner

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestProbesHooksInit: an init container fills an emptyDir; liveness failures restart a
// container; a startup probe gates started; a preStop sleep delays SIGTERM; runAsNonRoot
// without a user and an image without an entry never run, with the kubelet's reasons.
func TestProbesHooksInit(t *testing.T) {
	env := newTestEnv(t)
	p, rec, ctx := env.p, env.rec, env.ctx
	yes := true
	grace := int64(10)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "probes-1", UID: "2d7a9e3f-4b5c-6d7e-8f90-a1b2c3d4e5f6"},
		Spec: corev1.PodSpec{
			NodeName: "test-node", RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace,
			Volumes: []corev1.Volume{
				{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "web", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}}}},
			},
			InitContainers: []corev1.Container{{
				Name: "init", Image: "test/sh:1", Command: []string{"sh", "-c", "echo from-init > /etc/lgt-podrunner-test/work/ready"},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/etc/lgt-podrunner-test/work"}},
			}},
			Containers: []corev1.Container{
				{
					Name: "live", Image: "test/sh:1",
					Command: []string{"sh", "-c", "cat /etc/lgt-podrunner-test/work/ready; cat /tmp/nested/cfg/greeting; echo; exec sleep 300"},
					// An emptyDir on /tmp hides the state directory (under /tmp here) where the
					// other sources are; a ConfigMap is mounted inside it.
					VolumeMounts: []corev1.VolumeMount{
						{Name: "web", MountPath: "/tmp/nested/cfg"},
						{Name: "tmp", MountPath: "/tmp"},
						{Name: "work", MountPath: "/etc/lgt-podrunner-test/work"},
					},
					StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/etc/lgt-podrunner-test/work/ready"}}}, PeriodSeconds: 1},
					// Fails: nothing listens on 9999.
					LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9999)}},
						PeriodSeconds: 1, FailureThreshold: 2},
				},
				{
					Name: "drain", Image: "test/sh:1",
					Command:   []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"},
					Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 2}}},
				},
				{
					Name: "nonroot", Image: "test/sh:1", Command: []string{"sh", "-c", "sleep 300"},
					SecurityContext: &corev1.SecurityContext{RunAsNonRoot: &yes},
				},
				{Name: "noimage", Image: "example.com/unknown:1"},
			},
		},
	}
	if err := p.CreatePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	key := "ns/probes-1"
	waitFor(t, "init done, liveness restarts, waiting reasons", 30*time.Second, func() (bool, string) {
		cur := rec.get(key)
		if cur == nil {
			return false, "no status"
		}
		live, nonroot, noimage := containerStatus(cur, "live"), containerStatus(cur, "nonroot"), containerStatus(cur, "noimage")
		if live == nil || nonroot == nil || noimage == nil || len(cur.Status.InitContainerStatuses) != 1 {
			return false, fmt.Sprintf("%+v", cur.Status)
		}
		init := cur.Status.InitContainerStatuses[0]
		ok := init.State.Terminated != nil && init.State.Terminated.Reason == "Completed" &&
			condition(cur, corev1.PodInitialized) == corev1.ConditionTrue &&
			live.RestartCount >= 1 && live.LastTerminationState.Terminated != nil &&
			nonroot.State.Waiting != nil && nonroot.State.Waiting.Reason == "CreateContainerConfigError" &&
			noimage.State.Waiting != nil && noimage.State.Waiting.Reason == "ErrImageNeverPull" &&
			strings.Contains(noimage.State.Waiting.Message, "images.json")
		return ok, fmt.Sprintf("init %+v live %+v nonroot %+v noimage %+v", init.State, live, nonroot.State, noimage.State)
	})
	if l := readLogFile(t, p, "probes-1", "live"); !strings.Contains(l, "from-init") || !strings.Contains(l, "hello v1") {
		t.Errorf("live container log %q lacks the init container's file or the nested ConfigMap", l)
	}
	waitFor(t, "live started (startup probe) again", 10*time.Second, func() (bool, string) {
		cs := containerStatus(rec.get(key), "live")
		return cs.State.Running != nil && cs.Started != nil && *cs.Started, fmt.Sprintf("%+v", cs)
	})

	del := pod.DeepCopy()
	now := metav1.Now()
	del.DeletionTimestamp, del.DeletionGracePeriodSeconds = &now, &grace
	start := time.Now()
	if err := p.DeletePod(ctx, del); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod forgotten", 20*time.Second, func() (bool, string) { return p.find("ns", "probes-1") == nil, "still known" })
	took := time.Since(start)
	if took < 2*time.Second || took > 6*time.Second {
		t.Errorf("deletion took %s: want the 2 s preStop sleep, then a prompt SIGTERM", took)
	}
	if cs := containerStatus(rec.get(key), "drain"); cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
		t.Errorf("drain final state %+v", cs.State)
	}
}

func readLogFile(t *testing.T, p *Provider, pod, container string) string {
	t.Helper()
	_, c, err := p.container("ns", pod, container)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, f := range []string{"previous.log", "current.log"} {
		var b strings.Builder
		_ = readLog(t.Context(), c.dir+"/"+f, LogOptions{Tail: -1}, nil, &b)
		out.WriteString(b.String())
	}
	return out.String()
}
