package podrunner

import (
	"net"
	"testing"
)

func TestIPAM(t *testing.T) {
	dir := t.TempDir()
	_, cidr, _ := net.ParseCIDR("10.244.0.0/29") // .1-.6 usable
	bridge := net.ParseIP("10.244.0.1")
	a, err := NewIPAM(dir, cidr, bridge)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range []string{"a", "b", "c", "d", "e"} {
		ip, err := a.Allocate(o)
		if err != nil {
			t.Fatalf("allocate %s: %v", o, err)
		}
		if ip.Equal(bridge) || ip.Equal(net.ParseIP("10.244.0.0")) || ip.Equal(net.ParseIP("10.244.0.7")) {
			t.Errorf("handed out reserved %s", ip)
		}
		for other, s := range got {
			if s == ip.String() {
				t.Errorf("%s and %s share %s", o, other, ip)
			}
		}
		got[o] = ip.String()
	}
	if _, err := a.Allocate("f"); err == nil {
		t.Error("allocated past exhaustion")
	}
	if ip, _ := a.Allocate("c"); ip.String() != got["c"] {
		t.Errorf("re-allocate c = %s, want its lease %s", ip, got["c"])
	}
	// A restarted runner keeps the leases.
	b, err := NewIPAM(dir, cidr, bridge)
	if err != nil {
		t.Fatal(err)
	}
	if ip, _ := b.Allocate("d"); ip.String() != got["d"] {
		t.Errorf("after restart d = %s, want %s", ip, got["d"])
	}
	if err := b.Release("b"); err != nil {
		t.Fatal(err)
	}
	ip, err := b.Allocate("g")
	if err != nil || ip.String() != got["b"] {
		t.Errorf("g = %s %v, want the released %s", ip, err, got["b"])
	}
	if owners := b.Owners(); len(owners) != 5 {
		t.Errorf("owners %v", owners)
	}
}

func TestIPAMRoundRobin(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.244.0.0/16")
	a, err := NewIPAM(t.TempDir(), cidr, net.ParseIP("10.244.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := a.Allocate("a")
	if first.String() != "10.244.0.2" {
		t.Errorf("first = %s", first)
	}
	a.Release("a")
	second, _ := a.Allocate("b")
	if second.Equal(first) {
		t.Errorf("released address reused at once: %s", second)
	}
}
