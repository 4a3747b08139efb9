package podrunner

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"legate.dev/e2e/cluster/internal/shim"
)

// instance is one run of a container's process (the process group the shim became).
type instance struct {
	id      string
	pid     int
	started time.Time
	logPath string
	// done is closed once the process exited and its output is logged.
	done chan struct{}

	// Set before done is closed.
	exitCode int32
	signal   int32
	finished time.Time
}

func newContainerID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startInstance starts spec's program with its output logged to dir/current.log (the previous
// log moved to dir/previous.log) and its PID recorded in dir/pid. A *shim.StartError means the
// program never ran.
func (p *Provider) startInstance(dir string, spec *shim.Spec) (*instance, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cur := filepath.Join(dir, "current.log")
	if _, err := os.Stat(cur); err == nil {
		if err := os.Rename(cur, filepath.Join(dir, "previous.log")); err != nil {
			return nil, err
		}
	}
	lw, err := newLogWriter(cur)
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		lw.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		lw.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	closeAll := func() {
		lw.Close()
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
	}
	spec.ParentPID = os.Getpid()
	cmd, h, err := shim.Command(p.cfg.Self, p.cfg.SelfArgs, spec)
	if err != nil {
		closeAll()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		h.Close()
		closeAll()
		return nil, err
	}
	outW.Close()
	errW.Close()
	startErr := h.Started()
	inst := &instance{id: newContainerID(), pid: cmd.Process.Pid, started: time.Now(), logPath: cur, done: make(chan struct{})}
	pidFile := filepath.Join(dir, "pid")
	_ = writePIDFile(pidFile, inst.pid)
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); lw.copy("stdout", outR) }()
	go func() { defer copies.Done(); lw.copy("stderr", errR) }()
	go func() {
		_ = cmd.Wait()
		// The container is its process group: what the program left behind goes with it.
		_ = syscall.Kill(-inst.pid, syscall.SIGKILL)
		drained := make(chan struct{})
		go func() { copies.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(2 * time.Second):
			outR.Close()
			errR.Close()
			<-drained
		}
		outR.Close()
		errR.Close()
		lw.Close()
		_ = os.Remove(pidFile)
		inst.finished = time.Now()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			inst.signal = int32(ws.Signal())
			inst.exitCode = 128 + int32(ws.Signal())
		} else {
			inst.exitCode = int32(cmd.ProcessState.ExitCode())
		}
		close(inst.done)
	}()
	if startErr != nil {
		<-inst.done
		return nil, startErr
	}
	return inst, nil
}

// exited reports whether the instance's process is gone.
func (i *instance) exited() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// kill signals the instance's process group (unless it is already gone).
func (i *instance) kill(sig syscall.Signal) {
	if !i.exited() {
		_ = syscall.Kill(-i.pid, sig)
	}
}

// stop sends SIGTERM, waits up to grace (at least minGrace), then SIGKILL, and waits for the
// end.
func (i *instance) stop(grace time.Duration) {
	if grace < minGrace {
		grace = minGrace
	}
	i.kill(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-i.done:
		return
	case <-t.C:
	}
	i.kill(syscall.SIGKILL)
	select {
	case <-i.done:
	case <-time.After(10 * time.Second):
	}
}

// minGrace is the least time a container gets between SIGTERM and SIGKILL (the kubelet's).
const minGrace = 2 * time.Second

// writePIDFile records "PID STARTTIME" (the start time from /proc/PID/stat, so a cleanup does
// not kill a process that reused the PID).
func writePIDFile(path string, pid int) error {
	st, err := procStartTime(pid)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(fmt.Sprintf("%d %d\n", pid, st)), 0o644)
}

// procStartTime is field 22 of /proc/PID/stat; a zombie counts as gone (fs.ErrNotExist).
func procStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, fs.ErrNotExist
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// readPIDFile returns the PID recorded in path if that process still runs (same start time).
func readPIDFile(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	var pid int
	var start uint64
	n, _ := fmt.Sscan(string(data), &pid, &start)
	if n < 1 || pid <= 1 {
		return 0, false
	}
	cur, err := procStartTime(pid)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return pid, false
	}
	return pid, n < 2 || cur == start
}
