package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// component is one long-running process of the cluster.
type component struct {
	name string
	bin  string
	args []string
}

// start runs the component detached from the caller (its own session), its output appended to
// logs/<name>.log and its PID in pids/<name>.pid, so it outlives `up` and `down` finds it.
func (c *Config) start(comp component) error {
	logs, pids := c.path("logs"), c.path("pids")
	for _, d := range []string{logs, pids} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	out, err := os.OpenFile(filepath.Join(logs, comp.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(comp.bin, comp.args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = c.StateDir
	cmd.Env = append(os.Environ(), "LEGATE_CLUSTER_DIR="+c.StateDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", comp.name, err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return os.WriteFile(filepath.Join(pids, comp.name+".pid"), []byte(strconv.Itoa(pid)), 0o644)
}

// running reports whether the component's recorded PID is alive and still runs one of the
// cluster's binaries.
func (c *Config) running(name string) bool {
	pid := readPID(filepath.Join(c.path("pids"), name+".pid"))
	return pid > 0 && alive(pid)
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A zombie or a reused PID does not count.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// stopPIDs sends SIGTERM to every PID (and its process group), waits up to grace for all to
// exit, then SIGKILLs what is left.
func stopPIDs(pids []int, grace time.Duration) {
	var live []int
	for _, pid := range pids {
		if pid > 1 && alive(pid) {
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			_ = syscall.Kill(pid, syscall.SIGTERM)
			live = append(live, pid)
		}
	}
	deadline := time.Now().Add(grace)
	for len(live) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		live = filter(live, alive)
	}
	for _, pid := range live {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for i := 0; i < 50 && len(live) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
		live = filter(live, alive)
	}
}

func filter(pids []int, keep func(int) bool) []int {
	out := pids[:0]
	for _, p := range pids {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// strayPIDs lists processes that belong to the cluster but may have lost their PID file (a
// crashed `up`): those whose command line names the state directory (every component gets
// paths under it as arguments).
func strayPIDs(stateDir string) []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == os.Getppid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), stateDir+"/") || strings.Contains(string(cmdline), stateDir+"\x00") {
			if !isAncestor(pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// isAncestor reports whether pid is this process or one of its ancestors (never kill the shell
// that runs `down`).
func isAncestor(pid int) bool {
	for p := os.Getpid(); p > 1; {
		if p == pid {
			return true
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return false
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return false
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			return false
		}
		p, _ = strconv.Atoi(f[1])
	}
	return false
}

var errNotReady = errors.New("not ready")
