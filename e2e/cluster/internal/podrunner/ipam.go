package podrunner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// IPAM hands out the pod CIDR's addresses, one lease file per address in dir (the file holds
// the owner, a pod UID), so a restarted runner does not hand out an address a pod still holds.
// The network, broadcast and reserved (bridge) addresses are never handed out; allocation goes
// round-robin from the last address handed out, so a released address is not reused at once.
type IPAM struct {
	dir      string
	cidr     *net.IPNet
	reserved map[string]bool

	mu     sync.Mutex
	owners map[string]string // owner → ip
	leased map[string]string // ip → owner
	last   uint32
}

// NewIPAM loads the leases in dir (created if needed).
func NewIPAM(dir string, cidr *net.IPNet, reserved ...net.IP) (*IPAM, error) {
	if cidr.IP.To4() == nil {
		return nil, fmt.Errorf("pod CIDR %s is not IPv4", cidr)
	}
	if ones, bits := cidr.Mask.Size(); bits-ones < 2 {
		return nil, fmt.Errorf("pod CIDR %s is too small", cidr)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	a := &IPAM{dir: dir, cidr: cidr, reserved: map[string]bool{}, owners: map[string]string{}, leased: map[string]string{}}
	for _, r := range reserved {
		a.reserved[r.String()] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		ip := net.ParseIP(e.Name())
		if ip == nil || !cidr.Contains(ip) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		owner := strings.TrimSpace(string(data))
		a.owners[owner] = ip.String()
		a.leased[ip.String()] = owner
	}
	if data, err := os.ReadFile(filepath.Join(dir, "last")); err == nil {
		if ip := net.ParseIP(strings.TrimSpace(string(data))); ip != nil && cidr.Contains(ip) {
			a.last = ipToU32(ip)
		}
	}
	return a, nil
}

func ipToU32(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func u32ToIP(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// Allocate returns owner's address, leasing a free one if it has none.
func (a *IPAM) Allocate(owner string) (net.IP, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.owners[owner]; ok {
		return net.ParseIP(ip).To4(), nil
	}
	ones, bits := a.cidr.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	base := ipToU32(a.cidr.IP.Mask(a.cidr.Mask))
	start := a.last
	if start < base || start >= base+size {
		start = base
	}
	for i := uint32(1); i <= size; i++ {
		cand := base + (start-base+i)%size
		if cand == base || cand == base+size-1 {
			continue // network and broadcast
		}
		ip := u32ToIP(cand)
		s := ip.String()
		if a.reserved[s] || a.leased[s] != "" {
			continue
		}
		f, err := os.OpenFile(filepath.Join(a.dir, s), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_, err = f.WriteString(owner + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
			return nil, err
		}
		a.owners[owner] = s
		a.leased[s] = owner
		a.last = cand
		_ = os.WriteFile(filepath.Join(a.dir, "last"), []byte(s+"\n"), 0o644)
		return ip, nil
	}
	return nil, fmt.Errorf("pod CIDR %s is exhausted", a.cidr)
}

// Release frees owner's address, if any.
func (a *IPAM) Release(owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ip, ok := a.owners[owner]
	if !ok {
		return nil
	}
	delete(a.owners, owner)
	delete(a.leased, ip)
	if err := os.Remove(filepath.Join(a.dir, ip)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Owners lists the owners holding a lease.
func (a *IPAM) Owners() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return sortedKeys(a.owners)
}
