package podrunner

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"legate.dev/e2e/cluster/internal/images"
	"legate.dev/e2e/cluster/internal/shim"
)

// crashRunner runs a provider with one pod (a pause container mounted where the host has no
// directory, a memory emptyDir), prints READY when it runs, and waits to be killed.
func crashRunner() {
	state := os.Getenv("CRASH_STATE")
	_, cidr, _ := net.ParseCIDR(testCIDR)
	p, err := New(context.Background(), Config{
		NodeName: "crash", StateDir: state, ImagesPath: filepath.Join(state, "images.json"),
		Bridge: testBridge, HostIP: net.ParseIP(testHostIP), PodCIDR: cidr,
		APIServerHost: testHostIP, APIServerPort: 6443,
		Self: os.Args[0], SelfArgs: []string{shim.Subcommand},
		Source: newFakeSource(), NetnsPrefix: testNetns, VethPrefix: testVeth,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		panic(err)
	}
	running := make(chan struct{})
	p.NotifyPods(context.Background(), func(pod *corev1.Pod) {
		if len(pod.Status.ContainerStatuses) == 1 && pod.Status.ContainerStatuses[0].State.Running != nil {
			select {
			case <-running:
			default:
				close(running)
			}
		}
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "crash", UID: "3e8b0f4a-5c6d-7e8f-9a0b-c1d2e3f4a5b6"},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}},
			Containers: []corev1.Container{{Name: "pause", Image: "test/pause:1",
				VolumeMounts: []corev1.VolumeMount{{Name: "mem", MountPath: "/etc/lgt-podrunner-test/mem"}}}},
		},
	}
	if err := p.CreatePod(context.Background(), pod); err != nil {
		panic(err)
	}
	select {
	case <-running:
		fmt.Println("READY")
	case <-time.After(20 * time.Second):
		fmt.Println("TIMEOUT")
	}
	time.Sleep(time.Hour)
	os.Exit(0)
}

// TestCleanupAfterCrash kills a runner with a running pod and checks that its container died
// with it (parent-death signal) and that Cleanup removes the rest.
func TestCleanupAfterCrash(t *testing.T) {
	needNetns(t)
	setupBridge(t)
	state := t.TempDir()
	table := &images.Table{Images: []images.Entry{{Image: "test/pause:*", Entrypoint: []string{os.Args[0], "pause"}}}}
	if err := table.Save(filepath.Join(state, "images.json")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "crash-runner")
	cmd.Env = append(os.Environ(), "CRASH_STATE="+state)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "READY" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("crash runner: %q", line)
	}
	pidFiles, _ := filepath.Glob(filepath.Join(state, "pods", "*", "containers", "*", "pid"))
	if len(pidFiles) != 1 {
		t.Fatalf("pid files %v", pidFiles)
	}
	pid, alive := readPIDFile(pidFiles[0])
	if !alive {
		t.Fatalf("container pid %d not alive", pid)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitGone([]int{pid}, 5*time.Second)
	if _, alive := readPIDFile(pidFiles[0]); alive {
		t.Errorf("container %d survived its runner", pid)
	}
	netns := testNetns + uidHex("3e8b0f4a-5c6d-7e8f-9a0b-c1d2e3f4a5b6", 12)
	if _, err := os.Stat(netnsPath(netns)); err != nil {
		t.Fatalf("expected the crashed runner's netns %s: %v", netns, err)
	}
	if len(MountsUnder(state)) == 0 {
		t.Fatal("expected the memory emptyDir mount")
	}
	if err := cleanup(state, testNetns, testVeth); err != nil {
		t.Fatal(err)
	}
	if err := cleanup(state, testNetns, testVeth); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
	if _, err := os.Stat(netnsPath(netns)); err == nil {
		t.Errorf("netns %s left", netns)
	}
	if _, err := net.InterfaceByName(testVeth + uidHex("3e8b0f4a-5c6d-7e8f-9a0b-c1d2e3f4a5b6", 8)); err == nil {
		t.Error("veth left")
	}
	if m := MountsUnder(state); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if _, err := os.Stat("/etc/lgt-podrunner-test"); err == nil {
		t.Error("/etc/lgt-podrunner-test left")
	}
}
