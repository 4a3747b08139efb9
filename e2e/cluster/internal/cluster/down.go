package cluster

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"legate.dev/e2e/cluster/internal/podrunner"
)

// Down stops every process of the cluster and removes every network namespace, link, route,
// rule, mount and file it made. Safe to run twice, on a half-booted cluster or after a crash.
// It ends by checking for leftovers and fails if it finds any.
func Down(c *Config, log io.Writer) error {
	c.Defaults()
	// The node first (its pods die with it), then the control plane in reverse start order.
	for _, name := range []string{"legate-node", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		if pid := readPID(c.path("pids", name+".pid")); pid > 0 && alive(pid) {
			stopPIDs([]int{pid}, 10*time.Second)
			fmt.Fprintf(log, "stopped %s (pid %d)\n", name, pid)
		}
	}
	if stray := strayPIDs(c.StateDir); len(stray) > 0 {
		fmt.Fprintf(log, "stopping %d stray processes %v\n", len(stray), stray)
		stopPIDs(stray, 5*time.Second)
	}
	// The pods: their processes, network namespaces, veths, mounts and the mount points the
	// pod runner had to create on the host.
	if err := podrunner.Cleanup(c.path("node")); err != nil {
		fmt.Fprintf(log, "pods: %v\n", err)
	}
	for _, m := range podrunner.MountsUnder(c.StateDir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(log, "umount %s: %v\n", m, err)
		}
	}
	if err := teardownNetwork(c); err != nil {
		fmt.Fprintf(log, "network: %v\n", err)
	}
	if err := os.RemoveAll(c.StateDir); err != nil {
		fmt.Fprintf(log, "remove %s: %v\n", c.StateDir, err)
	}
	if left := Leftovers(c); len(left) > 0 {
		return fmt.Errorf("left behind after down:\n  %s", strings.Join(left, "\n  "))
	}
	return nil
}

// podNetns lists the network namespaces of pods (`lgt-*`).
func podNetns() []string {
	var out []string
	for _, line := range strings.Split(ipOut("netns", "list"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], Prefix+"-") {
			out = append(out, f[0])
		}
	}
	return out
}

// podLinks lists the host-side veths of pods (`lgtv*`).
func podLinks() []string {
	var out []string
	for _, line := range strings.Split(ipOut("-o", "link", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, Prefix+"v") {
			out = append(out, name)
		}
	}
	return out
}

// Leftovers lists what of a cluster is still on the machine: processes, network namespaces,
// links, routes, rules, mounts, the state directory. Empty after a successful Down.
func Leftovers(c *Config) []string {
	c.Defaults()
	var left []string
	for _, pid := range strayPIDs(c.StateDir) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		left = append(left, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	for _, ns := range podNetns() {
		left = append(left, "network namespace "+ns)
	}
	for _, l := range podLinks() {
		left = append(left, "link "+l)
	}
	if strings.Contains(ipOut("link", "show", c.Bridge), c.Bridge) {
		left = append(left, "bridge "+c.Bridge)
	}
	if strings.Contains(ipOut("route", "show", "type", "blackhole"), c.ServiceCIDR) {
		left = append(left, "blackhole route "+c.ServiceCIDR)
	}
	if r := strings.TrimSpace(ipOut("route", "show", "table", routeTable)); r != "" {
		left = append(left, "routes in table "+routeTable+": "+r)
	}
	if strings.Contains(ipOut("rule", "show"), "lookup "+routeTable) {
		left = append(left, "ip rule lookup "+routeTable)
	}
	for _, m := range podrunner.MountsUnder(c.StateDir) {
		left = append(left, "mount "+m)
	}
	if _, err := os.Stat(c.StateDir); err == nil {
		left = append(left, "directory "+c.StateDir)
	}
	// Mount points of the pod runner anywhere (it names them after the state directory).
	for _, m := range podrunner.MountsUnder(filepath.Join("/run", "netns")) {
		if strings.HasPrefix(filepath.Base(m), Prefix+"-") {
			left = append(left, "mount "+m)
		}
	}
	return left
}

// CopyLogs copies every *.log file under the state directory into dir, keeping relative paths.
func CopyLogs(c *Config, dir string) error {
	c.Defaults()
	return filepath.Walk(c.StateDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		rel, _ := filepath.Rel(c.StateDir, path)
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
