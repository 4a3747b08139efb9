package podrunner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func i32(v int32) *int32 { return &v }
func i64(v int64) *int64 { return &v }

func TestRenderVolumes(t *testing.T) {
	src := newFakeSource()
	src.addCM("ns", "boot", map[string]string{"bootstrap.yaml": "admin: {}", "other": "o"})
	src.addCM("ns", "kube-root-ca.crt", map[string]string{"ca.crt": "CA"})
	src.addSecret("ns", "cert", map[string]string{"tls.crt": "C", "tls.key": "K"})
	pod := envPod()
	r := &volumeRenderer{pod: pod, src: src, tokens: newTokenCache(src), podIP: "10.244.0.9", hostIP: "10.244.0.1"}
	tru := true
	cases := []struct {
		name string
		vol  corev1.Volume
		want map[string]fileData
		err  string
	}{
		{name: "configmap all keys", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "boot"}}}},
			want: map[string]fileData{"bootstrap.yaml": {[]byte("admin: {}"), 0o644}, "other": {[]byte("o"), 0o644}}},
		{name: "configmap items and modes", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "boot"}, DefaultMode: i32(0o600),
			Items: []corev1.KeyToPath{{Key: "bootstrap.yaml", Path: "a/b.yaml"}, {Key: "other", Path: "o", Mode: i32(0o400)}}}}},
			want: map[string]fileData{"a/b.yaml": {[]byte("admin: {}"), 0o600}, "o": {[]byte("o"), 0o400}}},
		{name: "secret default mode", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "cert", DefaultMode: i32(0o440)}}},
			want: map[string]fileData{"tls.crt": {[]byte("C"), 0o440}, "tls.key": {[]byte("K"), 0o440}}},
		{name: "missing secret", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "later"}}},
			err: `secret "ns/later" not found`},
		{name: "optional missing secret", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "later", Optional: &tru}}},
			want: map[string]fileData{}},
		{name: "missing key", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "boot"}, Items: []corev1.KeyToPath{{Key: "nope", Path: "n"}}}}},
			err: `has no key "nope"`},
		{name: "downward", vol: corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}, Mode: i32(0o400)},
				{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
				{Path: "uid", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
			}}}},
			want: map[string]fileData{"name": {[]byte("p1"), 0o644}, "labels": {[]byte(`app="x"`), 0o400}, "ns": {[]byte("ns"), 0o644}, "uid": {[]byte("u-1"), 0o644}}},
		{name: "projected service account", vol: corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: i32(0o644),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: i64(3607)}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			}}}},
			want: map[string]fileData{"token": {[]byte("token-ns-sa-[]-1"), 0o644}, "ca.crt": {[]byte("CA"), 0o644}, "namespace": {[]byte("ns"), 0o644}}},
	}
	for _, c := range cases {
		got, err := r.files(context.Background(), &c.vol)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %d files %v, want %d", c.name, len(got), got, len(c.want))
		}
		for k, w := range c.want {
			g, ok := got[k]
			if !ok || string(g.Data) != string(w.Data) || g.Mode != w.Mode {
				t.Errorf("%s: file %q = %q %o, want %q %o", c.name, k, g.Data, g.Mode, w.Data, w.Mode)
			}
		}
	}
}

func TestTokenRefresh(t *testing.T) {
	src := newFakeSource()
	src.ttl = 100 * time.Second
	c := newTokenCache(src)
	now := time.Now()
	c.now = func() time.Time { return now }
	pod := envPod()
	t1, err := c.get(context.Background(), pod, "aud", 100)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(79 * time.Second)
	if t2, _ := c.get(context.Background(), pod, "aud", 100); t2 != t1 {
		t.Errorf("token refreshed before 80%% of its lifetime: %q → %q", t1, t2)
	}
	now = now.Add(2 * time.Second)
	if t3, _ := c.get(context.Background(), pod, "aud", 100); t3 == t1 {
		t.Errorf("token not refreshed after 80%% of its lifetime")
	}
	if src.tokens != 2 {
		t.Errorf("%d token requests, want 2", src.tokens)
	}
}

func TestSyncFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	o := owner{uid: os.Getuid(), gid: os.Getgid()}
	if os.Geteuid() == 0 {
		o = owner{uid: 65532, gid: 1234}
	}
	files := map[string]fileData{"a": {[]byte("1"), 0o644}, "d/b": {[]byte("2"), 0o440}}
	changed, err := syncFiles(dir, files, o)
	if err != nil || !changed {
		t.Fatalf("first sync: changed %v err %v", changed, err)
	}
	st, _ := os.Stat(filepath.Join(dir, "d/b"))
	if st.Mode().Perm() != 0o440 {
		t.Errorf("mode %o", st.Mode().Perm())
	}
	if sys := st.Sys().(*syscall.Stat_t); int(sys.Uid) != o.uid || int(sys.Gid) != o.gid {
		t.Errorf("owner %d:%d, want %d:%d", sys.Uid, sys.Gid, o.uid, o.gid)
	}
	inode := func(p string) uint64 {
		st, _ := os.Stat(filepath.Join(dir, p))
		return st.Sys().(*syscall.Stat_t).Ino
	}
	inoA := inode("a")
	if changed, _ := syncFiles(dir, files, o); changed {
		t.Error("second identical sync changed something")
	}
	if inode("a") != inoA {
		t.Error("an unchanged file was rewritten")
	}
	files2 := map[string]fileData{"a": {[]byte("new"), 0o644}}
	if changed, err := syncFiles(dir, files2, o); err != nil || !changed {
		t.Fatalf("update: changed %v err %v", changed, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a")); string(data) != "new" {
		t.Errorf("a = %q", data)
	}
	if inode("a") == inoA {
		t.Error("a changed file was not replaced by a rename")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("stale entries left: %v", entries)
	}
}
