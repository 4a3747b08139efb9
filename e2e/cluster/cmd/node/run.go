package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"

	"legate.dev/e2e/cluster/internal/hostsdns"
	"legate.dev/e2e/cluster/internal/lb"
	"legate.dev/e2e/cluster/internal/podrunner"
	"legate.dev/e2e/cluster/internal/shim"
)

type runFlags struct {
	kubeconfig, nodeName, bridge, bridgeIP, podCIDR, lbPool, stateDir, images string
	listen, tlsCert, tlsKey, apiHost                                          string
	apiPort                                                                   int
	verbose                                                                   bool
}

func run(args []string) int {
	var f runFlags
	fs := flag.NewFlagSet("legate-node run", flag.ContinueOnError)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the node's API credentials (system:masters)")
	fs.StringVar(&f.nodeName, "node-name", "legate-node", "the Node's name")
	fs.StringVar(&f.bridge, "bridge", "lgt0", "host bridge the pods' veths join (must exist, with --bridge-ip on it)")
	fs.StringVar(&f.bridgeIP, "bridge-ip", "10.244.0.1", "the host's address on the bridge: the Node's InternalIP and the pods' hostIP")
	fs.StringVar(&f.podCIDR, "pod-cidr", "10.244.0.0/16", "the pods' subnet (the bridge's)")
	fs.StringVar(&f.lbPool, "lb-pool", "10.245.0.0/24", "the static addresses LoadBalancer Services may ask for (bound to a ready pod of the Service)")
	fs.StringVar(&f.stateDir, "state-dir", "", "directory for pod directories, logs, volumes, IP leases (required)")
	fs.StringVar(&f.images, "images", "", "image table (JSON, package images), read at each container start (required)")
	fs.StringVar(&f.listen, "listen", "10.244.0.1:10250", "kubelet API address (TLS)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "kubelet API serving certificate (PEM)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "kubelet API serving key (PEM)")
	fs.StringVar(&f.apiHost, "apiserver-host", "10.244.0.1", "KUBERNETES_SERVICE_HOST of the pods")
	fs.IntVar(&f.apiPort, "apiserver-port", 6443, "KUBERNETES_SERVICE_PORT of the pods")
	fs.BoolVar(&f.verbose, "v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if f.stateDir == "" || f.images == "" || f.tlsCert == "" || f.tlsKey == "" {
		fmt.Fprintln(os.Stderr, "legate-node run: --state-dir, --images, --tls-cert and --tls-key are required")
		return 2
	}
	if err := runNode(f); err != nil {
		slog.Error("legate-node", "err", err)
		return 1
	}
	return 0
}

func runNode(f runFlags) error {
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	vkLevel := slog.LevelWarn
	if f.verbose {
		vkLevel = slog.LevelDebug
	}
	log.L = vkslog.FromSlog(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: vkLevel})).With("component", "virtual-kubelet"))

	hostIP := net.ParseIP(f.bridgeIP).To4()
	if hostIP == nil {
		return fmt.Errorf("--bridge-ip %q is not an IPv4 address", f.bridgeIP)
	}
	_, cidr, err := net.ParseCIDR(f.podCIDR)
	if err != nil {
		return fmt.Errorf("--pod-cidr: %w", err)
	}
	if !cidr.Contains(hostIP) {
		return fmt.Errorf("--bridge-ip %s is not in --pod-cidr %s", hostIP, cidr)
	}
	_, pool, err := net.ParseCIDR(f.lbPool)
	if err != nil {
		return fmt.Errorf("--lb-pool: %w", err)
	}
	if pool.Contains(cidr.IP) || cidr.Contains(pool.IP) {
		return fmt.Errorf("--lb-pool %s overlaps --pod-cidr %s", pool, cidr)
	}
	_, portStr, err := net.SplitHostPort(f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--listen port: %w", err)
	}
	client, err := nodeutil.ClientsetFromEnv(f.kubeconfig)
	if err != nil {
		return err
	}
	// NewNode builds a default client from $KUBECONFIG before our options replace it: point it
	// at the same file (else it warns about in-cluster configuration).
	_ = os.Setenv("KUBECONFIG", f.kubeconfig)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	podsCtx, stopPods := context.WithCancel(context.Background())
	defer stopPods()

	var prov *podrunner.Provider
	newProvider := func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		p, err := podrunner.New(podsCtx, podrunner.Config{
			NodeName: f.nodeName, StateDir: f.stateDir, ImagesPath: f.images,
			Bridge: f.bridge, HostIP: hostIP, PodCIDR: cidr,
			APIServerHost: f.apiHost, APIServerPort: f.apiPort,
			Self: "/proc/self/exe", SelfArgs: []string{shim.Subcommand},
			Source: &podrunner.ClientSource{Client: client, ConfigMaps: pc.ConfigMaps, Secrets: pc.Secrets},
			Client: client, Pods: pc.Pods, Log: logger,
		})
		prov = p
		return p, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	n, err := nodeutil.NewNode(f.nodeName, newProvider,
		nodeutil.WithClient(client),
		func(cfg *nodeutil.NodeConfig) error {
			cfg.HTTPListenAddr = f.listen
			cfg.SkipDownwardAPIResolution = true
			cfg.NumWorkers = 4
			cfg.Handler = nodeutil.WithAuth(nodeutil.NoAuth(), mux)
			nodeSpec(&cfg.NodeSpec, f, hostIP, cidr, port)
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
		nodeutil.WithTLSConfig(nodeutil.WithKeyPairFromPath(f.tlsCert, f.tlsKey)),
	)
	if err != nil {
		return err
	}
	// Services and EndpointSlices: the LB controller and the hosts files.
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	lbc := lb.New(client, factory, logger.With("component", "lb"),
		lb.Options{Pool: pool, VIPs: lb.NetnsVIPs{Bridge: f.bridge, Netns: prov.Netns}})
	watcher := hostsdns.NewWatcher(factory, prov.SetServices)
	factory.Start(ctx.Done())
	go lbc.Run(ctx)
	go watcher.Run(ctx)

	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	if err := n.WaitReady(ctx, 2*time.Minute); err != nil {
		prov.Shutdown(5 * time.Second)
		return fmt.Errorf("node not ready: %w", err)
	}
	logger.Info("node ready", "node", f.nodeName, "listen", f.listen, "bridge", f.bridge, "pod-cidr", cidr.String())
	// Leases and directories of pods deleted while the node was down.
	pods := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "spec.nodeName=" + f.nodeName
	}))
	podLister := pods.Core().V1().Pods().Lister()
	pods.Start(ctx.Done())
	pods.WaitForCacheSync(ctx.Done())
	if list, err := podLister.List(labels.Everything()); err == nil {
		live := map[types.UID]bool{}
		for _, p := range list {
			live[p.UID] = true
		}
		prov.GC(live)
	}
	pods.Shutdown()

	err = <-errc
	logger.Info("node stopping: stopping pods")
	prov.Shutdown(6 * time.Second)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// nodeSpec fills the Node the controller registers.
func nodeSpec(n *corev1.Node, f runFlags, hostIP net.IP, cidr *net.IPNet, port int) {
	n.Labels["kubernetes.io/os"] = "linux"
	n.Labels["kubernetes.io/arch"] = "amd64"
	n.Labels["kubernetes.io/hostname"] = f.nodeName
	n.Spec.PodCIDR = cidr.String()
	n.Spec.PodCIDRs = []string{cidr.String()}
	n.Spec.Taints = nil
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: hostIP.String()},
		{Type: corev1.NodeHostName, Address: f.nodeName},
	}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	res := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("64Gi"),
		corev1.ResourcePods:             resource.MustParse("500"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	n.Status.Capacity = res
	n.Status.Allocatable = res.DeepCopy()
	var uts syscall.Utsname
	kernel := ""
	if syscall.Uname(&uts) == nil {
		b := make([]byte, 0, len(uts.Release))
		for _, c := range uts.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		kernel = string(b)
	}
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
		ContainerRuntimeVersion: "legate://0.1", KernelVersion: kernel, OSImage: "legate-node (host processes)",
	}
	now := metav1.Now()
	for i := range n.Status.Conditions {
		c := &n.Status.Conditions[i]
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
		switch c.Type {
		case corev1.NodeReady:
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, "KubeletNotReady", "starting"
		case corev1.NodeNetworkUnavailable:
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, "RouteCreated", "pods are on the node's bridge"
		default:
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, "KubeletHasSufficientResources", "no pressure"
		}
	}
}

func cleanup(args []string) int {
	fs := flag.NewFlagSet("legate-node cleanup", flag.ContinueOnError)
	stateDir := fs.String("state-dir", "", "the node's --state-dir")
	if err := fs.Parse(args); err != nil || *stateDir == "" {
		fmt.Fprintln(os.Stderr, "usage: legate-node cleanup --state-dir DIR")
		return 2
	}
	if err := podrunner.Cleanup(*stateDir); err != nil {
		fmt.Fprintln(os.Stderr, "legate-node cleanup:", err)
		return 1
	}
	return 0
}
