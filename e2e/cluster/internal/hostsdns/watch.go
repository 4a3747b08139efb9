package hostsdns

import (
	"context"
	"reflect"
	"sort"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// FromSlices returns the ready endpoint addresses of every Service named by the slices'
// kubernetes.io/service-name label (an endpoint is ready when conditions.ready is unset or
// true).
func FromSlices(slices []*discoveryv1.EndpointSlice) []Service {
	type key struct{ ns, name string }
	ips := map[key][]string{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" || s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		k := key{s.Namespace, name}
		if _, ok := ips[k]; !ok {
			ips[k] = nil
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			ips[k] = append(ips[k], ep.Addresses...)
		}
	}
	out := make([]Service, 0, len(ips))
	for k, v := range ips {
		out = append(out, Service{Namespace: k.ns, Name: k.name, IPs: SortedIPs(v)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Watcher calls OnChange with the Services' ready addresses whenever EndpointSlices change
// (coalesced over 100 ms), and at least every minute.
type Watcher struct {
	lister   discoverylisters.EndpointSliceLister
	synced   cache.InformerSynced
	kick     chan struct{}
	onChange func([]Service)
}

// NewWatcher registers on the factory's EndpointSlice informer; start the factory and Run.
func NewWatcher(factory informers.SharedInformerFactory, onChange func([]Service)) *Watcher {
	inf := factory.Discovery().V1().EndpointSlices()
	w := &Watcher{lister: inf.Lister(), synced: inf.Informer().HasSynced, kick: make(chan struct{}, 1), onChange: onChange}
	kick := func(any) {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: kick, DeleteFunc: kick, UpdateFunc: func(_, n any) { kick(n) },
	})
	return w
}

// Run publishes changes until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), w.synced) {
		return
	}
	var last []Service
	publish := func() {
		slices, err := w.lister.List(labels.Everything())
		if err != nil {
			return
		}
		cur := FromSlices(slices)
		if last != nil && reflect.DeepEqual(cur, last) {
			return
		}
		last = cur
		w.onChange(cur)
	}
	publish()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			publish()
		case <-tick.C:
			publish()
		}
	}
}
