package podrunner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	utilexec "k8s.io/utils/exec"

	"legate.dev/e2e/cluster/internal/hostsdns"
)

// Config configures a Provider.
type Config struct {
	NodeName string
	// StateDir holds everything the runner writes (see the package documentation).
	StateDir string
	// ImagesPath is the image table, read at each container start.
	ImagesPath string
	// Bridge is the host bridge the pods' veths join; HostIP the host's address on it (the
	// pods' hostIP); PodCIDR the pods' subnet (the bridge's).
	Bridge  string
	HostIP  net.IP
	PodCIDR *net.IPNet
	// APIServerHost and APIServerPort are what pods get as KUBERNETES_SERVICE_HOST/PORT.
	APIServerHost string
	APIServerPort int
	// Self and SelfArgs run the shim (`Self SelfArgs...` = `legate-node pod-exec`).
	Self     string
	SelfArgs []string
	// Source gives ConfigMaps, Secrets and tokens.
	Source Source
	// Client deletes a terminated pod from the API at once (as the kubelet does); nil leaves
	// it to the pod controller.
	Client kubernetes.Interface
	// Pods, when set, gives the API's latest pod (its metadata and status are the base of
	// the status the runner pushes).
	Pods corev1listers.PodLister
	// NetnsPrefix and VethPrefix name the pods' network namespaces and host veths
	// (default "lgt-" and "lgtv").
	NetnsPrefix, VethPrefix string
	// Resync is the period of volume resyncs and of retries (default 3 s).
	Resync time.Duration
	Log    *slog.Logger
}

// Provider runs pods as host processes (a virtual-kubelet provider: PodLifecycleHandler,
// PodNotifier and the kubelet API handlers).
type Provider struct {
	cfg         Config
	ipam        *IPAM
	mountpoints *mountpoints
	log         *slog.Logger
	ctx         context.Context

	mu           sync.Mutex
	shuttingDown bool
	pods         map[string]*podRun // namespace/name → the current pod of that name
	old          map[string]*podRun // uid → terminating pods replaced by a new one of the same name
	notifyFn     func(*corev1.Pod)
	svcs         []hostsdns.Service
}

// New makes a provider; its pods live until ctx ends (they die with the process anyway).
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.NetnsPrefix == "" {
		cfg.NetnsPrefix = "lgt-"
	}
	if cfg.VethPrefix == "" {
		cfg.VethPrefix = "lgtv"
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Self == "" {
		cfg.Self = "/proc/self/exe"
	}
	if len(cfg.VethPrefix)+8 > 15 {
		return nil, fmt.Errorf("veth prefix %q too long", cfg.VethPrefix)
	}
	for _, d := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, "pods")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	sweep(cfg.StateDir, cfg.NetnsPrefix, cfg.VethPrefix)
	ipam, err := NewIPAM(filepath.Join(cfg.StateDir, "ipam"), cfg.PodCIDR, cfg.HostIP)
	if err != nil {
		return nil, err
	}
	return &Provider{
		cfg: cfg, ipam: ipam, log: cfg.Log, ctx: ctx,
		mountpoints: &mountpoints{record: filepath.Join(cfg.StateDir, CreatedDirsFile)},
		pods:        map[string]*podRun{}, old: map[string]*podRun{},
	}, nil
}

func podKey(ns, name string) string { return ns + "/" + name }

// CreatePod starts a pod (asynchronously; its status comes through NotifyPods).
func (p *Provider) CreatePod(_ context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.pods[key]; ok {
		if r.uid == string(pod.UID) {
			r.update(pod)
			return nil
		}
		p.old[r.uid] = r
	}
	r := p.newPodRun(pod)
	p.pods[key] = r
	p.log.Info("pod created", "pod", key, "uid", pod.UID)
	go r.notifier(r.forgottenCh)
	go r.run()
	return nil
}

// Netns names the network namespace of the pod with this UID.
func (p *Provider) Netns(uid string) string { return p.cfg.NetnsPrefix + uidHex(uid, 12) }

func (p *Provider) newPodRun(pod *corev1.Pod) *podRun {
	uid := string(pod.UID)
	ctx, cancel := context.WithCancel(p.ctx)
	r := &podRun{
		p: p, key: podKey(pod.Namespace, pod.Name), uid: uid,
		dir:     filepath.Join(p.cfg.StateDir, "pods", uid),
		netns:   p.Netns(uid),
		veth:    p.cfg.VethPrefix + uidHex(uid, 8),
		hostNet: pod.Spec.HostNetwork,
		ctx:     ctx, cancel: cancel, tokens: newTokenCache(p.cfg.Source),
		kick: make(chan struct{}, 1), done: make(chan struct{}), forgottenCh: make(chan struct{}),
		pod: pod.DeepCopy(), conds: map[corev1.PodConditionType]condState{},
	}
	for _, c := range pod.Spec.InitContainers {
		r.initCtrs = append(r.initCtrs, newCtrRun(r, c, true))
	}
	for _, c := range pod.Spec.Containers {
		r.ctrs = append(r.ctrs, newCtrRun(r, c, false))
	}
	return r
}

// UpdatePod takes the pod's new metadata (labels and annotations reach downward API volumes
// at the next resync); a container whose image changed is restarted.
func (p *Provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	r, ok := p.pods[podKey(pod.Namespace, pod.Name)]
	p.mu.Unlock()
	if !ok || r.uid != string(pod.UID) {
		return p.CreatePod(ctx, pod)
	}
	r.update(pod)
	return nil
}

func (r *podRun) update(pod *corev1.Pod) {
	r.mu.Lock()
	old := r.pod
	r.pod = pod.DeepCopy()
	var restart []*ctrRun
	for i, c := range r.ctrs {
		if i < len(pod.Spec.Containers) && pod.Spec.Containers[i].Image != old.Spec.Containers[i].Image {
			c.spec.Image = pod.Spec.Containers[i].Image
			restart = append(restart, c)
		}
	}
	r.mu.Unlock()
	for _, c := range restart {
		c.requestRestart("image changed to " + c.spec.Image)
	}
	r.notify()
}

// DeletePod stops the pod's containers gracefully (in the background); once they are stopped
// the pod's status is terminal, its sandbox is gone and it is deleted from the API.
func (p *Provider) DeletePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	r, ok := p.pods[podKey(pod.Namespace, pod.Name)]
	if !ok || (pod.UID != "" && r.uid != string(pod.UID)) {
		r, ok = p.old[string(pod.UID)]
	}
	p.mu.Unlock()
	if !ok {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	if r.uid == string(pod.UID) {
		r.update(pod)
	}
	grace := 2 * time.Second
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.DeletionTimestamp == nil && pod.Spec.TerminationGracePeriodSeconds != nil:
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	r.terminate(grace)
	return nil
}

// forget removes a stopped, deleted pod: from the API (grace 0, this UID only), its directory,
// the provider's maps.
func (p *Provider) forget(r *podRun) {
	r.forgotten.Do(func() {
		r.mu.Lock()
		pod := r.pod.DeepCopy()
		r.mu.Unlock()
		// Let the notifier push the terminal status first.
		time.Sleep(200 * time.Millisecond)
		close(r.forgottenCh)
		if p.cfg.Client != nil && pod.DeletionTimestamp != nil {
			zero := int64(0)
			uid := pod.UID
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := p.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name,
				metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
			cancel()
			if err != nil {
				p.log.Debug("delete terminated pod", "pod", r.key, "err", err)
			}
		}
		for _, m := range MountsUnder(r.dir) {
			_ = unmount(m)
		}
		if err := os.RemoveAll(r.dir); err != nil {
			p.log.Warn("remove pod directory", "pod", r.key, "err", err)
		}
		p.mu.Lock()
		if cur, ok := p.pods[r.key]; ok && cur == r {
			delete(p.pods, r.key)
		}
		delete(p.old, r.uid)
		p.mu.Unlock()
		p.log.Info("pod deleted", "pod", r.key, "uid", r.uid)
	})
}

// GetPod returns the pod with its current status.
func (p *Provider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	r := p.find(namespace, name)
	if r == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, name)
	}
	return r.snapshot(p.apiPod(r)), nil
}

// GetPodStatus returns the pod's current status.
func (p *Provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods returns every pod the provider runs.
func (p *Provider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.snapshot(p.apiPod(r)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out, nil
}

// NotifyPods registers the status callback of the pod controller.
func (p *Provider) NotifyPods(_ context.Context, fn func(*corev1.Pod)) {
	p.mu.Lock()
	p.notifyFn = fn
	p.mu.Unlock()
}

func (p *Provider) notifyFunc() func(*corev1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notifyFn
}

func (p *Provider) find(namespace, name string) *podRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[podKey(namespace, name)]
}

// apiPod is the API's latest version of the pod (nil when unknown or of another UID).
func (p *Provider) apiPod(r *podRun) *corev1.Pod {
	if p.cfg.Pods == nil {
		return nil
	}
	ns, name, _ := strings.Cut(r.key, "/")
	pod, err := p.cfg.Pods.Pods(ns).Get(name)
	if err != nil || string(pod.UID) != r.uid {
		return nil
	}
	return pod
}

// SetServices publishes the Services' ready addresses (hosts-file DNS) to every pod.
func (p *Provider) SetServices(svcs []hostsdns.Service) {
	p.mu.Lock()
	p.svcs = svcs
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	for _, r := range runs {
		if err := r.writeHosts(svcs); err != nil {
			p.log.Warn("hosts file", "pod", r.key, "err", err)
		}
	}
}

func (p *Provider) services() []hostsdns.Service {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.svcs
}

// container finds a running pod's container.
func (p *Provider) container(namespace, name, container string) (*podRun, *ctrRun, error) {
	r := p.find(namespace, name)
	if r == nil {
		return nil, nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, name)
	}
	for _, c := range append(append([]*ctrRun(nil), r.ctrs...), r.initCtrs...) {
		if c.spec.Name == container || (container == "" && len(r.ctrs) == 1) {
			return r, c, nil
		}
	}
	return nil, nil, errdefs.NotFoundf("container %q is not in pod %s/%s", container, namespace, name)
}

// GetContainerLogs serves `kubectl logs` (tail, limitBytes, timestamps, since, follow,
// previous).
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	r, c, err := p.container(namespace, podName, containerName)
	if err != nil {
		return nil, err
	}
	lo := LogOptions{Tail: -1, LimitBytes: int64(opts.LimitBytes), Timestamps: opts.Timestamps, Follow: opts.Follow, Since: opts.SinceTime}
	if opts.Tail > 0 {
		lo.Tail = opts.Tail
	}
	if opts.SinceSeconds > 0 {
		lo.Since = time.Now().Add(-time.Duration(opts.SinceSeconds) * time.Second)
	}
	path := filepath.Join(c.dir, "current.log")
	r.mu.Lock()
	inst := c.inst
	r.mu.Unlock()
	done := make(chan struct{})
	close(done)
	if inst != nil {
		done = inst.done
	}
	if opts.Previous {
		path, done = filepath.Join(c.dir, "previous.log"), closedChan
		if _, err := os.Stat(path); err != nil {
			return nil, errdefs.NotFoundf("previous terminated container %q in pod %q not found", containerName, podName)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, errdefs.InvalidInputf("container %q in pod %q is waiting to start", containerName, podName)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(readLog(ctx, path, lo, done, pw))
	}()
	return pr, nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// RunInContainer serves `kubectl exec` (no TTY).
func (p *Provider) RunInContainer(ctx context.Context, namespace, podName, containerName string, cmd []string, attach api.AttachIO) error {
	r, c, err := p.container(namespace, podName, containerName)
	if err != nil {
		return err
	}
	if attach.TTY() {
		return errdefs.InvalidInput("exec with a TTY is not supported by legate-node (drop -t)")
	}
	var stdout, stderr io.Writer = io.Discard, io.Discard
	if w := attach.Stdout(); w != nil {
		defer w.Close()
		stdout = w
	}
	if w := attach.Stderr(); w != nil {
		defer w.Close()
		stderr = w
	}
	code, err := r.execInContainer(ctx, c, cmd, attach.Stdin(), stdout, stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// AttachToContainer is not supported.
func (p *Provider) AttachToContainer(context.Context, string, string, string, api.AttachIO) error {
	return errdefs.InvalidInput("attach is not supported by legate-node")
}

// PortForward connects the stream to the pod's port.
func (p *Provider) PortForward(ctx context.Context, namespace, podName string, port int32, stream io.ReadWriteCloser) error {
	r := p.find(namespace, podName)
	if r == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", namespace, podName)
	}
	defer stream.Close()
	host := r.probeHost("")
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(conn, stream); errc <- err }()
	go func() { _, err := io.Copy(stream, conn); errc <- err }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	return err
}

// GetStatsSummary returns an empty summary (no resource accounting).
func (p *Provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.cfg.NodeName, StartTime: metav1.Now()}}, nil
}

// GetMetricsResource returns no metrics.
func (p *Provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

// Running lists the UIDs of the pods the provider holds.
func (p *Provider) Running() []types.UID {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []types.UID
	for _, r := range p.pods {
		out = append(out, types.UID(r.uid))
	}
	return out
}

// GC releases the IP leases and removes the directories of pods that neither run here nor are
// in live (the pods bound to this node in the API), e.g. pods deleted while the runner was down.
func (p *Provider) GC(live map[types.UID]bool) {
	p.mu.Lock()
	keep := map[string]bool{}
	for _, r := range p.pods {
		keep[r.uid] = true
	}
	for uid := range p.old {
		keep[uid] = true
	}
	p.mu.Unlock()
	for uid := range live {
		keep[string(uid)] = true
	}
	for _, owner := range p.ipam.Owners() {
		if !keep[owner] {
			_ = p.ipam.Release(owner)
		}
	}
	dirs, _ := os.ReadDir(filepath.Join(p.cfg.StateDir, "pods"))
	for _, d := range dirs {
		if !keep[d.Name()] {
			dir := filepath.Join(p.cfg.StateDir, "pods", d.Name())
			for _, m := range MountsUnder(dir) {
				_ = unmount(m)
			}
			_ = os.RemoveAll(dir)
		}
	}
}

// Shutdown stops every pod quickly (no preStop hook, SIGTERM then SIGKILL after 2 s) and removes
// their sandboxes, waiting at most timeout. The pods stay in the API (a restarted runner
// recreates them).
func (p *Provider) Shutdown(timeout time.Duration) {
	p.mu.Lock()
	p.shuttingDown = true
	runs := make([]*podRun, 0, len(p.pods)+len(p.old))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	for _, r := range p.old {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	for _, r := range runs {
		r.mu.Lock()
		r.deadline = time.Now().Add(minGrace)
		r.mu.Unlock()
		r.cancel()
	}
	deadline := time.After(timeout)
	for _, r := range runs {
		select {
		case <-r.done:
		case <-deadline:
			p.log.Warn("shutdown: pods still stopping")
			return
		}
	}
}

func (p *Provider) isShuttingDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shuttingDown
}
