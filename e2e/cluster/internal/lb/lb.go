// Package lb is the test cluster's load-balancer controller: a Service of type LoadBalancer
// (without a loadBalancerClass) gets status.loadBalancer.ingress = [{ip: X, ipMode: VIP}],
// where X is the address of one ready endpoint of the Service (from its EndpointSlices). X is
// sticky: it stays while that endpoint stays ready, another ready endpoint replaces it when it
// is not, and the ingress is cleared when the Service has no ready endpoint. The address is a
// pod IP, reachable from the host through the bridge, on the Service's targetPort (Legate's
// fleet Services have port == targetPort).
//
// Static addresses: a Service that asks for addresses (the annotation AddressesAnnotation,
// comma-separated, else spec.loadBalancerIP) gets exactly those, when every one of them is in
// the controller's pool and no other Service holds it; they are then bound to one ready
// endpoint (sticky as above) through VIPs: the address on the pod's loopback and a host route
// to it via the pod IP. When one of them is not usable, the Service gets no ingress at all (as
// MetalLB does) and the controller logs why.
package lb

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"legate.dev/e2e/cluster/internal/hostsdns"
)

// Choose returns the ingress address for a Service whose current address is current (may be
// empty) and whose ready endpoint addresses are ready: current if it is still ready, else the
// lowest ready address, else "".
func Choose(current string, ready []string) string {
	for _, ip := range ready {
		if ip == current && current != "" {
			return current
		}
	}
	best := ""
	for _, ip := range hostsdns.SortedIPs(ready) {
		best = ip
		break
	}
	return best
}

// AddressesAnnotation lists the addresses a Service asks for (comma-separated IPs).
const AddressesAnnotation = "gateway.legate.dev/addresses"

// Endpoint is a ready endpoint of a Service: its address and, when the EndpointSlice names
// it, its pod's UID.
type Endpoint struct {
	IP     string
	PodUID string
}

// VIPs makes a static address reach an endpoint's pod.
type VIPs interface {
	Bind(ip string, ep Endpoint) error
	Unbind(ip string, ep Endpoint)
}

// Options configure static addresses; without a Pool, every requested address is unusable.
type Options struct {
	Pool *net.IPNet
	VIPs VIPs
}

// binding is what a Service's static addresses are bound to.
type binding struct {
	ips []string
	ep  Endpoint
}

// Controller keeps the LoadBalancer Services' ingress.
type Controller struct {
	client   kubernetes.Interface
	services corev1listers.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
	opts     Options
	// bound and owner are touched only by the one Run loop.
	bound   map[string]binding // by Service key
	owner   map[string]string  // static address -> Service key
	waiting map[string]bool    // Services refused an address (retried when one is released)
	chosen  map[string]string  // the endpoint last chosen, by Service key (the lister may lag)
}

// New registers on the factory's Service and EndpointSlice informers; start the factory, then
// Run.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger, opts Options) *Controller {
	svc := factory.Core().V1().Services()
	sl := factory.Discovery().V1().EndpointSlices()
	c := &Controller{
		client: client, services: svc.Lister(), slices: sl.Lister(),
		synced: []cache.InformerSynced{svc.Informer().HasSynced, sl.Informer().HasSynced},
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		log:    log, opts: opts, bound: map[string]binding{}, owner: map[string]string{}, waiting: map[string]bool{}, chosen: map[string]string{},
	}
	enqueueSvc := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	enqueueSlice := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelServiceName] != "" {
			c.queue.Add(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
		}
	}
	_, _ = svc.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueSvc, DeleteFunc: enqueueSvc, UpdateFunc: func(_, n any) { enqueueSvc(n) },
	})
	_, _ = sl.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueSlice, DeleteFunc: enqueueSlice, UpdateFunc: func(_, n any) { enqueueSlice(n) },
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		if err := c.sync(ctx, key); err != nil {
			c.log.Warn("load balancer status", "service", key, "err", err)
			c.queue.AddRateLimited(key)
		} else {
			c.queue.Forget(key)
		}
		c.queue.Done(key)
	}
}

// Requested is the addresses svc asks for: AddressesAnnotation, else spec.loadBalancerIP.
func Requested(svc *corev1.Service) []string {
	var out []string
	if v := svc.Annotations[AddressesAnnotation]; v != "" {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
	} else if svc.Spec.LoadBalancerIP != "" {
		out = []string{svc.Spec.LoadBalancerIP}
	}
	return out
}

// readyEndpoints lists the Service's ready endpoints, one per address.
func readyEndpoints(slices []*discoveryv1.EndpointSlice) []Endpoint {
	var out []Endpoint
	for _, s := range slices {
		if s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			uid := ""
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				uid = string(ep.TargetRef.UID)
			}
			for _, ip := range ep.Addresses {
				out = append(out, Endpoint{IP: ip, PodUID: uid})
			}
		}
	}
	return out
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key)
		delete(c.waiting, key)
		delete(c.chosen, key)
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil {
		c.release(key)
		return nil
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
	slices, err := c.slices.EndpointSlices(ns).List(sel)
	if err != nil {
		return err
	}
	ready := readyEndpoints(slices)
	var ips []string
	for _, ep := range ready {
		ips = append(ips, ep.IP)
	}
	current, known := c.chosen[key]
	if ing := svc.Status.LoadBalancer.Ingress; !known && len(ing) > 0 {
		current = ing[0].IP
	}
	chosen := Choose(current, ips)
	c.chosen[key] = chosen
	var addrs []string
	if requested := Requested(svc); len(requested) > 0 {
		if addrs, err = c.bindStatic(key, requested, ready, chosen); err != nil {
			return err
		}
	} else {
		c.release(key)
		if chosen != "" {
			addrs = []string{chosen}
		}
	}
	want := []corev1.LoadBalancerIngress{}
	vip := corev1.LoadBalancerIPModeVIP
	for _, ip := range addrs {
		want = append(want, corev1.LoadBalancerIngress{IP: ip, IPMode: &vip})
	}
	if equality.Semantic.DeepEqual(want, svc.Status.LoadBalancer.Ingress) ||
		(len(want) == 0 && len(svc.Status.LoadBalancer.Ingress) == 0) {
		return nil
	}
	upd := svc.DeepCopy()
	upd.Status.LoadBalancer.Ingress = want
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.client.CoreV1().Services(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return err
	}
	c.log.Info("load balancer ingress", "service", key, "ips", strings.Join(addrs, ","))
	return nil
}

// Usable says why a static address cannot be given to Service key ("" when it can).
func (c *Controller) Usable(key, addr string) string {
	ip := net.ParseIP(addr)
	switch {
	case ip == nil:
		return "not an IP address"
	case c.opts.Pool == nil || !c.opts.Pool.Contains(ip):
		return fmt.Sprintf("not in the load balancer's pool %v", c.opts.Pool)
	case c.owner[ip.String()] != "" && c.owner[ip.String()] != key:
		return "held by Service " + c.owner[ip.String()]
	}
	return ""
}

// bindStatic binds the requested addresses to the chosen endpoint and returns them, or returns
// none (releasing what was bound) when one is unusable or no endpoint is ready.
func (c *Controller) bindStatic(key string, requested []string, ready []Endpoint, chosen string) ([]string, error) {
	for _, a := range requested {
		if why := c.Usable(key, a); why != "" {
			c.log.Warn("static address not usable", "service", key, "address", a, "why", why)
			c.release(key)
			c.waiting[key] = true
			return nil, nil
		}
	}
	i := slices.IndexFunc(ready, func(e Endpoint) bool { return e.IP == chosen })
	if i < 0 || c.opts.VIPs == nil {
		c.release(key)
		return nil, nil
	}
	delete(c.waiting, key)
	want := binding{ips: slices.Clone(requested), ep: ready[i]}
	if b, ok := c.bound[key]; ok && b.ep == want.ep && slices.Equal(b.ips, want.ips) {
		return requested, nil
	}
	c.release(key)
	for _, a := range want.ips {
		if err := c.opts.VIPs.Bind(a, want.ep); err != nil {
			for _, done := range want.ips {
				c.opts.VIPs.Unbind(done, want.ep)
			}
			return nil, fmt.Errorf("binding %s to %s: %w", a, want.ep.IP, err)
		}
		c.owner[net.ParseIP(a).String()] = key
	}
	c.bound[key] = want
	c.log.Info("static addresses bound", "service", key, "ips", strings.Join(want.ips, ","), "endpoint", want.ep.IP)
	return requested, nil
}

// release unbinds the static addresses of Service key, if any.
func (c *Controller) release(key string) {
	b, ok := c.bound[key]
	if !ok {
		return
	}
	for _, a := range b.ips {
		c.opts.VIPs.Unbind(a, b.ep)
		delete(c.owner, net.ParseIP(a).String())
	}
	delete(c.bound, key)
	for k := range c.waiting {
		if k != key {
			c.queue.Add(k)
		}
	}
}
