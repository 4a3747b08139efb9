// Package lb is the test cluster's load-balancer controller: a Service of type LoadBalancer
// (without a loadBalancerClass) gets status.loadBalancer.ingress = [{ip: X, ipMode: VIP}],
// where X is the address of one ready endpoint of the Service (from its EndpointSlices). X is
// sticky: it stays while that endpoint stays ready, another ready endpoint replaces it when it
// is not, and the ingress is cleared when the Service has no ready endpoint. The address is a
// pod IP, reachable from the host through the bridge, on the Service's targetPort (Legate's
// fleet Services have port == targetPort).
package lb

import (
	"context"
	"log/slog"
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

// Controller keeps the LoadBalancer Services' ingress.
type Controller struct {
	client   kubernetes.Interface
	services corev1listers.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New registers on the factory's Service and EndpointSlice informers; start the factory, then
// Run.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	svc := factory.Core().V1().Services()
	sl := factory.Discovery().V1().EndpointSlices()
	c := &Controller{
		client: client, services: svc.Lister(), slices: sl.Lister(),
		synced: []cache.InformerSynced{svc.Informer().HasSynced, sl.Informer().HasSynced},
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		log:    log,
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

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil {
		return nil
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
	slices, err := c.slices.EndpointSlices(ns).List(sel)
	if err != nil {
		return err
	}
	var ready []string
	for _, s := range hostsdns.FromSlices(slices) {
		ready = append(ready, s.IPs...)
	}
	current := ""
	if ing := svc.Status.LoadBalancer.Ingress; len(ing) > 0 {
		current = ing[0].IP
	}
	want := []corev1.LoadBalancerIngress{}
	if ip := Choose(current, ready); ip != "" {
		vip := corev1.LoadBalancerIPModeVIP
		want = []corev1.LoadBalancerIngress{{IP: ip, IPMode: &vip}}
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
	addr := ""
	if len(want) > 0 {
		addr = want[0].IP
	}
	c.log.Info("load balancer ingress", "service", key, "ip", addr)
	return nil
}
