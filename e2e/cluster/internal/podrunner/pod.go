package podrunner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"legate.dev/e2e/cluster/internal/hostsdns"
)

// podRun is one pod on the node: its sandbox (network namespace, directory, volumes) and
// containers.
type podRun struct {
	p       *Provider
	key     string
	uid     string
	dir     string
	netns   string
	veth    string
	hostNet bool
	ctx     context.Context
	cancel  context.CancelFunc
	tokens  *tokenCache
	kick    chan struct{}
	// done is closed when the pod's containers are all stopped for good.
	done      chan struct{}
	forgotten sync.Once
	// forgottenCh is closed when the deleted pod is forgotten (its notifier stops).
	forgottenCh chan struct{}

	mu           sync.Mutex
	pod          *corev1.Pod
	ip           net.IP
	startTime    *metav1.Time
	netReady     bool
	initDone     bool
	initFailed   bool
	terminal     bool
	deleting     bool
	deadline     time.Time
	initCtrs     []*ctrRun
	ctrs         []*ctrRun
	conds        map[corev1.PodConditionType]condState
	hostsContent []byte
}

type condState struct {
	status corev1.ConditionStatus
	since  metav1.Time
}

func (r *podRun) logf(format string, args ...any) {
	r.p.log.Info(fmt.Sprintf(format, args...), "pod", r.key)
}

func (r *podRun) debugf(format string, args ...any) {
	r.p.log.Debug(fmt.Sprintf(format, args...), "pod", r.key)
}

// ipString is the pod IP ("" before the network is up). Caller holds r.mu.
func (r *podRun) ipString() string {
	if r.ip == nil {
		return ""
	}
	return r.ip.String()
}

func (r *podRun) hostname() string {
	h := r.pod.Spec.Hostname
	if h == "" {
		h = r.pod.Name
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

// notify asks the notifier to push the pod's status.
func (r *podRun) notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// deadlineTime is when a terminating pod's containers get SIGKILL.
func (r *podRun) deadlineTime() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deadline.IsZero() {
		return time.Now().Add(r.terminationGrace())
	}
	return r.deadline
}

// terminationGrace is the pod's terminationGracePeriodSeconds (default 30 s).
func (r *podRun) terminationGrace() time.Duration {
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// run is the pod's life: sandbox, volumes, init containers, containers, then teardown.
func (r *podRun) run() {
	defer r.finish()
	if err := r.setup(); err != nil {
		return
	}
	go r.resyncLoop()
	for _, c := range r.initCtrs {
		if !c.runToCompletion(r.ctx) {
			return
		}
	}
	r.mu.Lock()
	r.initDone = true
	r.mu.Unlock()
	r.notify()
	var wg sync.WaitGroup
	for _, c := range r.ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(r.ctx)
		}()
	}
	wg.Wait()
}

// setup makes the pod directory, network and volumes, retrying until they are ready or the
// pod ends.
func (r *podRun) setup() error {
	for _, d := range []string{r.dir, filepath.Join(r.dir, "volumes"), filepath.Join(r.dir, "containers")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	_ = os.WriteFile(filepath.Join(r.dir, "pod"), []byte(r.key+"\n"), 0o644)
	for {
		err := r.setupNetwork()
		if err == nil {
			break
		}
		r.setAllWaiting("ContainerCreating", "pod network: "+err.Error())
		if !r.sleep(r.ctx, 2*time.Second) {
			return r.ctx.Err()
		}
	}
	for {
		err := r.syncVolumes()
		if err == nil {
			break
		}
		r.setAllWaiting("ContainerCreating", err.Error())
		if !r.sleep(r.ctx, r.p.cfg.Resync) {
			return r.ctx.Err()
		}
	}
	return nil
}

func (r *podRun) setAllWaiting(reason, msg string) {
	for _, c := range append(append([]*ctrRun(nil), r.initCtrs...), r.ctrs...) {
		c.setWaiting(reason, msg)
	}
}

func (r *podRun) setupNetwork() error {
	ip := r.p.cfg.HostIP
	if !r.hostNet {
		var err error
		if ip, err = r.p.ipam.Allocate(r.uid); err != nil {
			return err
		}
		ones, _ := r.p.cfg.PodCIDR.Mask.Size()
		var sysctls []corev1.Sysctl
		if sc := r.pod.Spec.SecurityContext; sc != nil {
			sysctls = sc.Sysctls
		}
		if err := setupNetwork(r.netns, r.veth, r.p.cfg.Bridge, ip, ones, sysctls); err != nil {
			return err
		}
		_ = os.WriteFile(filepath.Join(r.dir, "netns"), []byte(r.netns+" "+r.veth+"\n"), 0o644)
	}
	r.mu.Lock()
	r.ip = ip
	now := metav1.Now()
	r.startTime = &now
	r.netReady = true
	r.mu.Unlock()
	files := map[string][]byte{
		"resolv.conf": []byte("# legate-node: no cluster DNS; names resolve through /etc/hosts.\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n"),
		"hostname":    []byte(r.hostname() + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), data, 0o644); err != nil {
			return err
		}
	}
	if err := r.writeHosts(r.p.services()); err != nil {
		return err
	}
	r.logf("sandbox ready: ip %s netns %s", ip, r.netns)
	r.notify()
	return nil
}

// writeHosts rewrites the pod's hosts file in place (it is bind-mounted: same inode) when its
// content changes.
func (r *podRun) writeHosts(services []hostsdns.Service) error {
	r.mu.Lock()
	pod := hostsdns.Pod{Name: r.pod.Name, Namespace: r.pod.Namespace, IP: r.ipString(),
		Hostname: r.pod.Spec.Hostname, Subdomain: r.pod.Spec.Subdomain, Aliases: r.pod.Spec.HostAliases}
	ready := r.netReady
	r.mu.Unlock()
	if !ready {
		return nil
	}
	data := hostsdns.Render(pod, r.p.cfg.APIServerHost, services)
	r.mu.Lock()
	defer r.mu.Unlock()
	if bytes.Equal(data, r.hostsContent) {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(r.dir, "hosts"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		r.hostsContent = data
	}
	return err
}

// volumeOwner is who owns the files of the pod's volumes: the pod's user (pod-level runAsUser,
// or the one all containers share), group fsGroup (else the pod's runAsGroup).
func volumeOwner(pod *corev1.Pod) owner {
	o := owner{}
	psc := pod.Spec.SecurityContext
	if psc != nil && psc.RunAsUser != nil {
		o.uid = int(*psc.RunAsUser)
	} else {
		var common *int64
		same := true
		for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
			if c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil {
				same = false
				break
			}
			if common != nil && *common != *c.SecurityContext.RunAsUser {
				same = false
				break
			}
			common = c.SecurityContext.RunAsUser
		}
		if same && common != nil {
			o.uid = int(*common)
		}
	}
	switch {
	case psc != nil && psc.FSGroup != nil:
		o.gid = int(*psc.FSGroup)
	case psc != nil && psc.RunAsGroup != nil:
		o.gid = int(*psc.RunAsGroup)
	}
	return o
}

// syncVolumes writes the file volumes, makes the emptyDirs and checks hostPaths. A missing
// source is an error (the pod waits; on a resync the old files stay).
func (r *podRun) syncVolumes() error {
	r.mu.Lock()
	pod := r.pod.DeepCopy()
	ip := r.ipString()
	r.mu.Unlock()
	rend := &volumeRenderer{pod: pod, src: r.p.cfg.Source, tokens: r.tokens, podIP: ip, hostIP: r.p.cfg.HostIP.String()}
	o := volumeOwner(pod)
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		dir := filepath.Join(r.dir, "volumes", v.Name)
		switch {
		case isFileVolume(v):
			files, err := rend.files(r.ctx, v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := syncFiles(dir, files, o); err != nil {
				errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
			}
		case v.EmptyDir != nil:
			if err := r.emptyDir(dir, v.EmptyDir); err != nil {
				errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
			}
		case v.HostPath != nil:
			if err := r.hostPath(v.HostPath); err != nil {
				errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
			}
		default:
			errs = append(errs, fmt.Errorf("volume %q: unsupported volume type (configMap, secret, downwardAPI, projected, emptyDir, hostPath are)", v.Name))
		}
	}
	return errors.Join(errs...)
}

func (r *podRun) emptyDir(dir string, e *corev1.EmptyDirVolumeSource) error {
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
	}
	if e.Medium != corev1.StorageMediumMemory || isMountPoint(dir) {
		return nil
	}
	opts := "mode=0777"
	if e.SizeLimit != nil && !e.SizeLimit.IsZero() {
		opts += fmt.Sprintf(",size=%d", e.SizeLimit.Value())
	}
	return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts)
}

func (r *podRun) hostPath(h *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if h.Type != nil {
		t = *h.Type
	}
	switch t {
	case corev1.HostPathDirectoryOrCreate:
		return r.p.mountpoints.ensure(h.Path, true)
	case corev1.HostPathFileOrCreate:
		return r.p.mountpoints.ensure(h.Path, false)
	}
	_, err := os.Stat(h.Path)
	return err
}

// isMountPoint reports whether path is a mount point (its device differs from its parent's).
func isMountPoint(path string) bool {
	var a, b unix.Stat_t
	if unix.Stat(path, &a) != nil || unix.Stat(filepath.Dir(path), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// resyncLoop keeps volumes (ConfigMaps, Secrets, tokens, downward API) in sync until the pod
// stops.
func (r *podRun) resyncLoop() {
	t := time.NewTicker(r.p.cfg.Resync)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.done:
			return
		case <-t.C:
		}
		err := r.syncVolumes()
		if msg := fmt.Sprint(err); err != nil && msg != lastErr {
			r.logf("volume resync: %v (the previous files stay)", err)
		}
		lastErr = fmt.Sprint(err)
	}
}

// finish runs when every container stopped for good: the sandbox goes, the status becomes
// terminal, and a deleted pod is forgotten.
func (r *podRun) finish() {
	if !r.hostNet {
		teardownNetwork(r.netns, r.veth)
		if err := r.p.ipam.Release(r.uid); err != nil {
			r.logf("release ip: %v", err)
		}
	}
	r.mu.Lock()
	r.terminal = true
	deleting := r.deleting
	r.mu.Unlock()
	close(r.done)
	r.logf("pod stopped")
	r.notify()
	if deleting {
		r.p.forget(r)
	}
}

// terminate stops the pod's containers with the grace period (preStop hooks, SIGTERM,
// SIGKILL); a pod that already stopped is forgotten at once.
func (r *podRun) terminate(grace time.Duration) {
	r.mu.Lock()
	deadline := time.Now().Add(grace)
	if r.deleting {
		if deadline.Before(r.deadline) {
			r.deadline = deadline
		}
		r.mu.Unlock()
		return
	}
	r.deleting = true
	r.deadline = deadline
	terminal := r.terminal
	r.mu.Unlock()
	r.logf("terminating (grace %s)", grace)
	if terminal {
		r.p.forget(r)
		return
	}
	r.cancel()
}
