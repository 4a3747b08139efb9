package podrunner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"legate.dev/e2e/cluster/internal/ipcmd"
)

// uidHex is a pod UID as lowercase hex (the dashes dropped), at least n characters.
func uidHex(uid string, n int) string {
	h := strings.ToLower(strings.ReplaceAll(uid, "-", ""))
	if _, err := hex.DecodeString(h); err != nil || len(h) < n {
		sum := sha256.Sum256([]byte(uid))
		h = hex.EncodeToString(sum[:])
	}
	return h[:n]
}

// netnsPath is where `ip netns` keeps a named network namespace.
func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// setupNetwork creates the pod's network namespace with lo up and eth0 (the peer of the host
// veth on the bridge) holding ip/prefix: the pod reaches the bridge's subnet on-link and
// nothing else (no default route). A namespace or veth left by an earlier run is replaced.
func setupNetwork(netns, veth, bridge string, ip net.IP, prefix int, sysctls []corev1.Sysctl) error {
	teardownNetwork(netns, veth)
	steps := [][]string{
		{"netns", "add", netns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns},
		{"link", "set", veth, "master", bridge, "up"},
		{"-n", netns, "addr", "add", fmt.Sprintf("%s/%d", ip, prefix), "dev", "eth0"},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ipcmd.Run(s...); err != nil {
			teardownNetwork(netns, veth)
			return err
		}
	}
	if err := applySysctls(netnsPath(netns), sysctls); err != nil {
		teardownNetwork(netns, veth)
		return err
	}
	return nil
}

// teardownNetwork kills what still runs in the namespace, then deletes the veth and the
// namespace; missing ones are fine.
func teardownNetwork(netns, veth string) {
	if netns != "" {
		if _, err := os.Stat(netnsPath(netns)); err == nil {
			killNetnsPids(netns)
			_ = ipcmd.Run("netns", "del", netns)
		}
	}
	if veth != "" {
		if _, err := net.InterfaceByName(veth); err == nil {
			_ = ipcmd.Run("link", "del", veth)
		}
	}
}

// killNetnsPids SIGKILLs every process in the namespace and waits (up to 5 s) until none is
// left.
func killNetnsPids(netns string) {
	for i := 0; i < 50; i++ {
		out, err := exec.Command("ip", "netns", "pids", netns).Output()
		if err != nil {
			return
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			var pid int
			if _, err := fmt.Sscan(p, &pid); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// applySysctls writes the pod's net.* sysctls inside its network namespace (from a thread that
// joined it). Other sysctls are not namespaced by the network namespace: refused.
func applySysctls(nsPath string, sysctls []corev1.Sysctl) error {
	if len(sysctls) == 0 {
		return nil
	}
	for _, s := range sysctls {
		name := strings.ReplaceAll(s.Name, "/", ".")
		if !strings.HasPrefix(name, "net.") {
			return fmt.Errorf("sysctl %s: only net.* sysctls are supported (namespaced by the pod's network namespace)", s.Name)
		}
	}
	errc := make(chan error, 1)
	go func() {
		// The thread goes back to the host namespace before it is unlocked; if that fails it
		// stays locked and exits with the goroutine. (A thread that exits sends the
		// parent-death signal to the processes it forked: unlock whenever possible.)
		runtime.LockOSThread()
		errc <- func() error {
			self, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				return err
			}
			defer self.Close()
			target, err := os.Open(nsPath)
			if err != nil {
				runtime.UnlockOSThread()
				return err
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				return fmt.Errorf("setns %s: %w", nsPath, err)
			}
			var errs []error
			for _, s := range sysctls {
				var key string
				if strings.Contains(s.Name, "/") {
					key = s.Name
				} else {
					key = strings.ReplaceAll(s.Name, ".", "/")
				}
				if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(s.Value), 0o644); err != nil {
					errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", s.Name, s.Value, err))
				}
			}
			if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
				// This thread stays in the pod's namespace: let it die with the goroutine.
				return errors.Join(append(errs, fmt.Errorf("setns back: %w", err))...)
			}
			runtime.UnlockOSThread()
			return errors.Join(errs...)
		}()
	}()
	return <-errc
}
