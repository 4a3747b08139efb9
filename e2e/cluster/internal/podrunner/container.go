package podrunner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"legate.dev/e2e/cluster/internal/images"
	"legate.dev/e2e/cluster/internal/shim"
)

// ctrRun is one container of a pod: its restart loop and status.
type ctrRun struct {
	r       *podRun
	spec    corev1.Container
	init    bool
	dir     string
	backoff *Backoff
	// restartCh asks the supervisor to restart the running instance (failed liveness or
	// startup probe, failed postStart hook).
	restartCh chan string

	// Guarded by r.mu.
	state, lastState corev1.ContainerState
	ready, started   bool
	restartCount     int32
	imageID          string
	inst             *instance
	shimSpec         *shim.Spec
	entry            *images.Entry
	finished         bool // ended for good (restart policy)
	everStarted      bool
}

func newCtrRun(r *podRun, spec corev1.Container, init bool) *ctrRun {
	reason := "ContainerCreating"
	if !init && len(r.pod.Spec.InitContainers) > 0 {
		reason = "PodInitializing"
	}
	return &ctrRun{
		r: r, spec: spec, init: init, dir: filepath.Join(r.dir, "containers", spec.Name),
		backoff: NewBackoff(), restartCh: make(chan string, 1),
		state: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}},
	}
}

// setWaiting records a waiting state (when the container is not running) and notifies.
func (c *ctrRun) setWaiting(reason, msg string) {
	c.r.mu.Lock()
	if c.inst == nil {
		w := &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
		if c.state.Waiting == nil || *c.state.Waiting != *w {
			c.state = corev1.ContainerState{Waiting: w}
			c.r.logf("container %s waiting: %s: %s", c.spec.Name, reason, msg)
		}
	}
	c.r.mu.Unlock()
	c.r.notify()
}

// errNotStarted is a launch that did not create a process (it waits and retries).
var errNotStarted = errors.New("not started")

// launch resolves the container's program, environment and mounts and starts it. On a
// configuration problem it records a waiting state and returns errNotStarted; a
// *shim.StartError means the process was created but the program could not run.
func (c *ctrRun) launch(ctx context.Context) (*instance, error) {
	r := c.r
	p := r.p
	table, err := images.Load(p.cfg.ImagesPath)
	if err != nil {
		c.setWaiting("ErrImageNeverPull", fmt.Sprintf("image table %s: %v", p.cfg.ImagesPath, err))
		return nil, errNotStarted
	}
	entry, ok := table.Lookup(c.spec.Image)
	if !ok {
		c.setWaiting("ErrImageNeverPull", fmt.Sprintf("Container image %q has no entry in the image table %s (this cluster has no container runtime: an image runs only as the host program its entry names)", c.spec.Image, p.cfg.ImagesPath))
		return nil, errNotStarted
	}
	r.mu.Lock()
	pod := r.pod.DeepCopy()
	podIP := r.ipString()
	r.mu.Unlock()
	in := envInput{pod: pod, src: p.cfg.Source, imageEnv: entry.Env, apiHost: p.cfg.APIServerHost, apiPort: p.cfg.APIServerPort,
		podIP: podIP, hostIP: p.cfg.HostIP.String()}
	env, envMap, err := containerEnv(in, &c.spec)
	if err != nil {
		c.setWaiting("CreateContainerConfigError", err.Error())
		return nil, errNotStarted
	}
	uid, gid, groups := credentials(pod, &c.spec)
	if nonRoot(pod, &c.spec) && (uid == nil || *uid == 0) {
		c.setWaiting("CreateContainerConfigError", "container has runAsNonRoot and image will run as root")
		return nil, errNotStarted
	}
	argv, err := entry.Resolve(ExpandAll(c.spec.Command, MapLookup(envMap)), ExpandAll(c.spec.Args, MapLookup(envMap)))
	if err != nil {
		c.setWaiting("CreateContainerError", err.Error())
		return nil, errNotStarted
	}
	mounts, err := r.containerMounts(&c.spec, envMap)
	if err != nil {
		c.setWaiting("CreateContainerConfigError", err.Error())
		return nil, errNotStarted
	}
	if wd := filepath.Clean(c.spec.WorkingDir); c.spec.WorkingDir != "" && !insideMount(wd, mounts) {
		if err := p.mountpoints.ensure(wd, true); err != nil {
			c.setWaiting("CreateContainerConfigError", "working directory: "+err.Error())
			return nil, errNotStarted
		}
	}
	sc := c.spec.SecurityContext
	spec := &shim.Spec{
		Argv: argv, Env: env, Dir: c.spec.WorkingDir, Hostname: r.hostname(), Mounts: mounts,
		ReadOnlyRoot: sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		UID:          uid, GID: gid, Groups: groups,
		NoNewPrivs: sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
	}
	if !r.hostNet {
		spec.NetNS = netnsPath(r.netns)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	inst, err := p.startInstance(c.dir, spec)
	if err != nil {
		var se *shim.StartError
		if !errors.As(err, &se) {
			se = &shim.StartError{Msg: err.Error()}
		}
		now := metav1.Now()
		r.mu.Lock()
		c.lastState = c.state
		c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 128, Reason: "StartError", Message: se.Msg, StartedAt: now, FinishedAt: now}}
		c.everStarted = true
		r.mu.Unlock()
		r.logf("container %s failed to start: %s", c.spec.Name, se.Msg)
		r.notify()
		return nil, se
	}
	r.mu.Lock()
	if c.state.Terminated != nil {
		c.lastState = c.state
	}
	c.inst, c.shimSpec, c.entry = inst, spec, entry
	c.imageID = "legate-image://" + argv[0]
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(inst.started)}}
	c.everStarted = true
	c.started = c.spec.StartupProbe == nil
	c.ready = c.started && c.spec.ReadinessProbe == nil && !c.init
	r.mu.Unlock()
	r.logf("container %s started (pid %d): %s", c.spec.Name, inst.pid, strings.Join(argv, " "))
	r.notify()
	return inst, nil
}

// supervise runs the instance's hooks and probes until it exits; when ctx ends (pod deletion)
// or a probe asks for a restart it stops the instance gracefully. It records the terminated
// state.
func (c *ctrRun) supervise(ctx context.Context, inst *instance) {
	r := c.r
	pctx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	if h := c.spec.Lifecycle; h != nil && h.PostStart != nil {
		if err := r.runHandler(pctx, c, h.PostStart); err != nil && pctx.Err() == nil {
			r.logf("container %s: postStart hook failed: %v", c.spec.Name, err)
			c.requestRestart("FailedPostStartHook: " + err.Error())
		}
	}
	if !c.init {
		go c.probeAll(pctx, inst)
	}
	select {
	case <-inst.done:
	case <-ctx.Done():
		if r.p.isShuttingDown() {
			r.logf("container %s: stopping (node shutting down)", c.spec.Name)
			inst.stop(minGrace)
		} else {
			r.logf("container %s: stopping (pod terminating)", c.spec.Name)
			c.stop(inst, time.Until(r.deadlineTime()))
		}
	case reason := <-c.restartCh:
		r.logf("container %s: restarting: %s", c.spec.Name, reason)
		c.stop(inst, r.terminationGrace())
	}
	stopProbes()
	<-inst.done
	term := &corev1.ContainerStateTerminated{
		ExitCode: inst.exitCode, Signal: inst.signal, Reason: "Error",
		StartedAt: metav1.NewTime(inst.started), FinishedAt: metav1.NewTime(inst.finished), ContainerID: "legate://" + inst.id,
	}
	if inst.exitCode == 0 {
		term.Reason = "Completed"
	}
	r.mu.Lock()
	c.state = corev1.ContainerState{Terminated: term}
	c.inst, c.ready, c.started = nil, false, false
	r.mu.Unlock()
	r.logf("container %s exited with %d", c.spec.Name, inst.exitCode)
	r.notify()
}

func (c *ctrRun) requestRestart(reason string) {
	select {
	case c.restartCh <- reason:
	default:
	}
}

// stop runs the preStop hook (within the grace period), then SIGTERM, SIGKILL after the rest
// of the grace period.
func (c *ctrRun) stop(inst *instance, grace time.Duration) {
	deadline := time.Now().Add(grace)
	if h := c.spec.Lifecycle; h != nil && h.PreStop != nil && !inst.exited() {
		hctx, cancel := context.WithDeadline(context.Background(), deadline)
		go func() {
			select {
			case <-inst.done:
				cancel()
			case <-hctx.Done():
			}
		}()
		if err := c.r.runHandler(hctx, c, h.PreStop); err != nil && !inst.exited() {
			c.r.logf("container %s: preStop hook: %v", c.spec.Name, err)
		}
		cancel()
	}
	inst.stop(time.Until(deadline))
}

// loop runs a regular container until the pod ends or its restart policy says it is done.
func (c *ctrRun) loop(ctx context.Context) {
	r := c.r
	for ctx.Err() == nil {
		inst, err := c.launch(ctx)
		var ran time.Duration
		exitCode := int32(128)
		switch {
		case errors.Is(err, errNotStarted):
			if !r.sleep(ctx, r.p.cfg.Resync) {
				return
			}
			continue
		case err != nil && ctx.Err() != nil:
			return
		case err == nil:
			c.supervise(ctx, inst)
			ran, exitCode = inst.finished.Sub(inst.started), inst.exitCode
		}
		if ctx.Err() != nil {
			return
		}
		if !restarts(r.pod.Spec.RestartPolicy, exitCode) {
			r.mu.Lock()
			c.finished = true
			r.mu.Unlock()
			r.notify()
			return
		}
		if !c.backOff(ctx, ran) {
			return
		}
	}
}

// backOff waits before a restart (state CrashLoopBackOff) and counts the restart.
func (c *ctrRun) backOff(ctx context.Context, ran time.Duration) bool {
	r := c.r
	delay := c.backoff.Next(ran)
	r.mu.Lock()
	if c.state.Terminated != nil {
		c.lastState = c.state
	}
	c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, c.spec.Name, r.pod.Name)}}
	r.mu.Unlock()
	r.notify()
	if !r.sleep(ctx, delay) {
		return false
	}
	r.mu.Lock()
	c.restartCount++
	r.mu.Unlock()
	return true
}

// runToCompletion runs an init container until it succeeds; false when the pod ends first or
// fails (restartPolicy Never).
func (c *ctrRun) runToCompletion(ctx context.Context) bool {
	r := c.r
	for ctx.Err() == nil {
		inst, err := c.launch(ctx)
		var ran time.Duration
		switch {
		case errors.Is(err, errNotStarted):
			if !r.sleep(ctx, r.p.cfg.Resync) {
				return false
			}
			continue
		case err != nil && ctx.Err() != nil:
			return false
		case err == nil:
			c.supervise(ctx, inst)
			if ctx.Err() != nil {
				return false
			}
			if inst.exitCode == 0 {
				r.mu.Lock()
				c.finished = true
				r.mu.Unlock()
				return true
			}
			ran = inst.finished.Sub(inst.started)
		}
		if r.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			r.mu.Lock()
			c.finished = true
			r.initFailed = true
			r.mu.Unlock()
			r.notify()
			return false
		}
		if !c.backOff(ctx, ran) {
			return false
		}
	}
	return false
}

// insideMount reports whether path is at or below one of the mounts' targets.
func insideMount(path string, mounts []shim.Mount) bool {
	for _, m := range mounts {
		if path == m.Target || m.Target == "/" || strings.HasPrefix(path, m.Target+"/") {
			return true
		}
	}
	return false
}

func restarts(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// credentials returns the container's uid, gid and supplementary groups (container security
// context over the pod's; the fsGroup is a supplementary group).
func credentials(pod *corev1.Pod, c *corev1.Container) (uid, gid *uint32, groups []uint32) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	u32 := func(v *int64) *uint32 {
		if v == nil {
			return nil
		}
		x := uint32(*v)
		return &x
	}
	uid = u32(sc.RunAsUser)
	if uid == nil {
		uid = u32(psc.RunAsUser)
	}
	gid = u32(sc.RunAsGroup)
	if gid == nil {
		gid = u32(psc.RunAsGroup)
	}
	if uid != nil && gid == nil {
		zero := uint32(0)
		gid = &zero
	}
	seen := map[uint32]bool{}
	add := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	if gid != nil {
		add(*gid)
	}
	for _, g := range psc.SupplementalGroups {
		add(uint32(g))
	}
	if psc.FSGroup != nil {
		add(uint32(*psc.FSGroup))
	}
	if uid == nil && gid == nil && len(groups) == 0 {
		return nil, nil, nil
	}
	return uid, gid, groups
}

func nonRoot(pod *corev1.Pod, c *corev1.Container) bool {
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	return pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsNonRoot != nil && *pod.Spec.SecurityContext.RunAsNonRoot
}

// resolveExec returns the host program for a command run in a container (exec probes, hooks,
// kubectl exec): the image's commands, an absolute path, else a lookup in the container's PATH.
func resolveExec(entry *images.Entry, env []string, argv []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	if entry != nil {
		if p, err := entry.Command(argv[0]); err == nil {
			return append([]string{p}, argv[1:]...), nil
		}
	}
	if filepath.IsAbs(argv[0]) {
		return argv, nil
	}
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		cand := filepath.Join(dir, argv[0])
		if st, err := os.Stat(cand); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return append([]string{cand}, argv[1:]...), nil
		}
	}
	return nil, &exec.Error{Name: argv[0], Err: exec.ErrNotFound}
}
