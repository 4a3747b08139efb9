package podrunner

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cleanup removes everything a node (legate-node run) with this state directory left on the
// machine, for `down` and after a crash; idempotent. See the package documentation for the
// contract. It does not remove the state directory itself.
func Cleanup(stateDir string) error {
	return cleanup(stateDir, "lgt-", "lgtv")
}

func cleanup(stateDir, netnsPrefix, vethPrefix string) error {
	var errs []error
	// 1. Recorded container PIDs (each the leader of its container's process group).
	pidFiles, _ := filepath.Glob(filepath.Join(stateDir, "pods", "*", "containers", "*", "pid"))
	var pids []int
	for _, f := range pidFiles {
		if pid, alive := readPIDFile(f); alive {
			pids = append(pids, pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.Remove(f)
	}
	waitGone(pids, 5*time.Second)
	// 2. Network namespaces (with whatever still runs in them) and host veths: the ones the
	// pod directories name, and every one with the prefixes.
	names := map[string]bool{}
	links := map[string]bool{}
	recs, _ := filepath.Glob(filepath.Join(stateDir, "pods", "*", "netns"))
	for _, f := range recs {
		data, _ := os.ReadFile(f)
		if fields := strings.Fields(string(data)); len(fields) == 2 {
			names[fields[0]] = true
			links[fields[1]] = true
		}
	}
	for _, n := range listNetns() {
		if strings.HasPrefix(n, netnsPrefix) {
			names[n] = true
		}
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, vethPrefix) {
				links[i.Name] = true
			}
		}
	}
	for n := range names {
		teardownNetwork(n, "")
		if _, err := os.Stat(netnsPath(n)); err == nil {
			errs = append(errs, fmt.Errorf("network namespace %s is still there", n))
		}
	}
	for l := range links {
		teardownNetwork("", l)
		if _, err := net.InterfaceByName(l); err == nil {
			errs = append(errs, fmt.Errorf("link %s is still there", l))
		}
	}
	// 3. Mounts under the state directory (memory emptyDirs).
	for _, m := range MountsUnder(stateDir) {
		if err := unmount(m); err != nil {
			errs = append(errs, fmt.Errorf("umount %s: %w", m, err))
		}
	}
	// 4. Mount points created on the host.
	if err := removeCreated(filepath.Join(stateDir, CreatedDirsFile)); err != nil {
		errs = append(errs, err)
	}
	// 5. Pod directories and IP leases: nothing of them is alive any more.
	for _, d := range []string{"pods", "ipam"} {
		if err := os.RemoveAll(filepath.Join(stateDir, d)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweep is the start-up cleanup of a restarted runner: the pods' processes, namespaces, veths
// and mounts go (the pod controller recreates the pods; their IP leases stay so each gets its
// address back), the pod directories stay (logs).
func sweep(stateDir, netnsPrefix, vethPrefix string) {
	pidFiles, _ := filepath.Glob(filepath.Join(stateDir, "pods", "*", "containers", "*", "pid"))
	var pids []int
	for _, f := range pidFiles {
		if pid, alive := readPIDFile(f); alive {
			pids = append(pids, pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_ = os.Remove(f)
	}
	waitGone(pids, 5*time.Second)
	for _, n := range listNetns() {
		if strings.HasPrefix(n, netnsPrefix) {
			teardownNetwork(n, "")
		}
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, vethPrefix) {
				teardownNetwork("", i.Name)
			}
		}
	}
	for _, m := range MountsUnder(stateDir) {
		_ = unmount(m)
	}
}

func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if err := syscall.Kill(pid, 0); err != nil {
				break
			}
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(st), ") Z") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// listNetns lists the named network namespaces (`ip netns list`).
func listNetns() []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// MountsUnder lists the mount points at or below dir, deepest first (symbolic links in dir
// resolved, escaped characters of /proc/self/mountinfo decoded).
func MountsUnder(dir string) []string {
	dir = filepath.Clean(dir)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unmount(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return err
}
