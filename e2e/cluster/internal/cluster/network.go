package cluster

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// routeTable is the policy-routing table for packets arriving from the bridge: the pod CIDR on
// the bridge, and a blackhole for everything else, so nothing a pod sends is forwarded off this
// machine (whatever the host's ip_forward says). Local addresses are delivered before it (the
// `local` table comes first).
const routeTable = "2440"

// rulePriority is the priority of the `iif <bridge> lookup routeTable` rule.
const rulePriority = "2440"

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func ipOut(args ...string) string {
	out, _ := exec.Command("ip", args...).Output()
	return string(out)
}

func parseCIDR(s string) (net.IP, *net.IPNet, error) {
	ipv, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, nil, err
	}
	return ipv.To4(), n, nil
}

// setupNetwork creates the bridge with the host address, the blackhole route for the Service
// CIDR and the policy routing that keeps pod traffic on this machine. Idempotent.
func setupNetwork(c *Config) error {
	_, pod, err := parseCIDR(c.PodCIDR)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %w", c.PodCIDR, err)
	}
	ones, _ := pod.Mask.Size()
	if !strings.Contains(ipOut("link", "show", c.Bridge), c.Bridge) {
		if err := ip("link", "add", c.Bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	if !strings.Contains(ipOut("-4", "addr", "show", "dev", c.Bridge), c.BridgeIP+"/") {
		if err := ip("addr", "add", fmt.Sprintf("%s/%d", c.BridgeIP, ones), "dev", c.Bridge); err != nil {
			return err
		}
	}
	if err := ip("link", "set", c.Bridge, "up"); err != nil {
		return err
	}
	if err := ip("route", "replace", "blackhole", c.ServiceCIDR); err != nil {
		return err
	}
	if err := ip("route", "replace", pod.String(), "dev", c.Bridge, "table", routeTable); err != nil {
		return err
	}
	if err := ip("route", "replace", "blackhole", "default", "table", routeTable); err != nil {
		return err
	}
	if !strings.Contains(ipOut("rule", "show", "priority", rulePriority), "lookup "+routeTable) {
		if err := ip("rule", "add", "iif", c.Bridge, "lookup", routeTable, "priority", rulePriority); err != nil {
			return err
		}
	}
	return nil
}

// teardownNetwork removes what setupNetwork made. Idempotent; returns the first error of the
// steps that found something to remove and failed.
func teardownNetwork(c *Config) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for strings.Contains(ipOut("rule", "show", "priority", rulePriority), "lookup "+routeTable) {
		if err := ip("rule", "del", "priority", rulePriority); err != nil {
			keep(err)
			break
		}
	}
	if strings.TrimSpace(ipOut("route", "show", "table", routeTable)) != "" {
		keep(ip("route", "flush", "table", routeTable))
	}
	if strings.Contains(ipOut("route", "show", "type", "blackhole"), c.ServiceCIDR) {
		keep(ip("route", "del", "blackhole", c.ServiceCIDR))
	}
	if strings.Contains(ipOut("link", "show", c.Bridge), c.Bridge) {
		keep(ip("link", "del", c.Bridge))
	}
	return first
}
