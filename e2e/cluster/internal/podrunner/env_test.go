package podrunner

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func envPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "ns", UID: "u-1", Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{NodeName: "legate-node", ServiceAccountName: "sa"},
	}
}

func TestContainerEnv(t *testing.T) {
	src := newFakeSource()
	src.addCM("ns", "cm", map[string]string{"B": "from-cm", "C": "c", "1bad": "x"})
	src.addSecret("ns", "sec", map[string]string{"PASSWORD": "hunter2"})
	tru := true
	c := &corev1.Container{
		Name: "c",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: &tru}},
		},
		Env: []corev1.EnvVar{
			{Name: "A", Value: "a"},
			{Name: "B", Value: "$(A)-override"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "KEY", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "C"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "nope", Optional: &tru}}},
			{Name: "LATER", Value: "$(UNDEFINED_YET)$(KUBERNETES_SERVICE_HOST)"},
			{Name: "UNDEFINED_YET", Value: "u"},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
		},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
	}
	in := envInput{pod: envPod(), src: src, imageEnv: map[string]string{"PATH": "/img/bin", "IMG": "i", "A": "image-a"},
		apiHost: "10.244.0.1", apiPort: 6443, podIP: "10.244.0.7", hostIP: "10.244.0.1"}
	list, m, err := containerEnv(in, c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PATH": "/img/bin", "HOSTNAME": "p1", "IMG": "i",
		"KUBERNETES_SERVICE_HOST": "10.244.0.1", "KUBERNETES_SERVICE_PORT": "6443", "KUBERNETES_SERVICE_PORT_HTTPS": "6443",
		"A": "a", "B": "a-override", "C": "c", "S_PASSWORD": "hunter2",
		"POD_NAME": "p1", "POD_IP": "10.244.0.7", "APP": "x", "KEY": "c",
		"LATER": "$(UNDEFINED_YET)10.244.0.1", "UNDEFINED_YET": "u",
		"MEM": "65536", "CPU": "1",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("env map:\n got %v\nwant %v", m, want)
	}
	if len(list) != len(want) {
		t.Errorf("list has %d entries, want %d: %q", len(list), len(want), list)
	}
	if list[0] != "PATH=/img/bin" || list[1] != "HOSTNAME=p1" {
		t.Errorf("list starts %q", list[:2])
	}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		if want[k] != v {
			t.Errorf("list %s=%q, want %q", k, v, want[k])
		}
	}
}

func TestContainerEnvMissing(t *testing.T) {
	src := newFakeSource()
	src.addCM("ns", "cm", map[string]string{"A": "a"})
	cases := []corev1.Container{
		{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k"}}}}},
		{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "nope"}}}}},
		{EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}}}}},
	}
	for i, c := range cases {
		_, _, err := containerEnv(envInput{pod: envPod(), src: src}, &c)
		if _, ok := err.(*configError); !ok {
			t.Errorf("case %d: err = %v, want a configError", i, err)
		}
	}
}

func TestPodField(t *testing.T) {
	pod := envPod()
	pod.Annotations = map[string]string{"b": "2", "a": "one \"quoted\""}
	cases := map[string]string{
		"metadata.name":              "p1",
		"metadata.namespace":         "ns",
		"metadata.uid":               "u-1",
		"metadata.labels":            `app="x"`,
		"metadata.annotations":       "a=\"one \\\"quoted\\\"\"\nb=\"2\"",
		"metadata.annotations['b']":  "2",
		`metadata.labels["app"]`:     "x",
		"metadata.labels['missing']": "",
		"spec.nodeName":              "legate-node",
		"spec.serviceAccountName":    "sa",
		"status.podIP":               "10.0.0.2",
		"status.hostIP":              "10.0.0.1",
	}
	for path, want := range cases {
		got, err := podField(pod, path, "10.0.0.2", "10.0.0.1")
		if err != nil || got != want {
			t.Errorf("podField(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := podField(pod, "spec.nope", "", ""); err == nil {
		t.Error("unsupported path: no error")
	}
}
