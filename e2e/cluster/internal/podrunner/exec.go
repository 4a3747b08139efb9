package podrunner

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"legate.dev/e2e/cluster/internal/shim"
)

// execInContainer runs argv in the container's namespaces, mounts and credentials (a fresh
// mount namespace set up like the container's) and returns its exit code. The process group is
// killed when ctx ends.
func (r *podRun) execInContainer(ctx context.Context, c *ctrRun, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	r.mu.Lock()
	base, entry := c.shimSpec, c.entry
	running := c.inst != nil
	r.mu.Unlock()
	if !running || base == nil {
		return -1, fmt.Errorf("container %s is not running", c.spec.Name)
	}
	spec := *base
	resolved, err := resolveExec(entry, spec.Env, argv)
	if err != nil {
		return -1, err
	}
	spec.Argv = resolved
	spec.ParentPID = os.Getpid()
	cmd, h, err := shim.Command(r.p.cfg.Self, r.p.cfg.SelfArgs, &spec)
	if err != nil {
		return -1, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		h.Close()
		return -1, err
	}
	startErr := h.Started()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	waitErr := cmd.Wait()
	close(done)
	if startErr != nil {
		return -1, startErr
	}
	if ctx.Err() != nil {
		return -1, fmt.Errorf("%v: %w", argv, ctx.Err())
	}
	if cmd.ProcessState == nil {
		return -1, waitErr
	}
	return cmd.ProcessState.ExitCode(), nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func (r *podRun) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
