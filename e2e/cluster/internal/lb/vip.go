package lb

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// NetnsVIPs binds a static address to a pod of the node: the address on the loopback of the
// pod's network namespace (so that the pod accepts it) and a host route to it via the pod's IP
// on the bridge. Both vanish with the pod's namespace and the bridge.
type NetnsVIPs struct {
	Bridge string
	// Netns names a pod's network namespace from its UID.
	Netns func(uid string) string
}

// Bind implements VIPs.
func (v NetnsVIPs) Bind(ip string, ep Endpoint) error {
	if ep.PodUID == "" {
		return fmt.Errorf("endpoint %s names no pod", ep.IP)
	}
	if err := run("-n", v.Netns(ep.PodUID), "addr", "replace", ip+"/32", "dev", "lo"); err != nil {
		return err
	}
	return run("route", "replace", ip+"/32", "via", ep.IP, "dev", v.Bridge)
}

// Unbind implements VIPs; what is already gone is fine.
func (v NetnsVIPs) Unbind(ip string, ep Endpoint) {
	_ = run("route", "del", ip+"/32", "via", ep.IP, "dev", v.Bridge)
	if ep.PodUID != "" {
		_ = run("-n", v.Netns(ep.PodUID), "addr", "del", ip+"/32", "dev", "lo")
	}
}

func run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
