package lb

import (
	"fmt"

	"legate.dev/e2e/cluster/internal/ipcmd"
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
	if err := ipcmd.Run("-n", v.Netns(ep.PodUID), "addr", "replace", ip+"/32", "dev", "lo"); err != nil {
		return err
	}
	return ipcmd.Run("route", "replace", ip+"/32", "via", ep.IP, "dev", v.Bridge)
}

// Unbind implements VIPs; what is already gone is fine.
func (v NetnsVIPs) Unbind(ip string, ep Endpoint) {
	_ = ipcmd.Run("route", "del", ip+"/32", "via", ep.IP, "dev", v.Bridge)
	if ep.PodUID != "" {
		_ = ipcmd.Run("-n", v.Netns(ep.PodUID), "addr", "del", ip+"/32", "dev", "lo")
	}
}
