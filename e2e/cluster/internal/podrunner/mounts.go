package podrunner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"legate.dev/e2e/cluster/internal/shim"
)

// CreatedDirsFile is the file (in the state directory) listing, one per line, every directory
// or empty file the runner created on the host as a mount point, in creation order.
const CreatedDirsFile = "created-dirs"

// mountpoints creates missing mount points on the host and records them.
type mountpoints struct {
	mu     sync.Mutex
	record string
}

// ensure makes path exist as a directory (dir) or a file, creating what is missing and
// recording each created path before creating it.
func (m *mountpoints) ensure(path string, dir bool) error {
	st, err := os.Stat(path)
	if err == nil {
		if st.IsDir() != dir {
			kind := "a directory"
			if !dir {
				kind = "a file"
			}
			return fmt.Errorf("mount point %s exists and is not %s", path, kind)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// The missing components, outermost first.
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		missing = append([]string{p}, missing...)
		if p == "/" || p == "." {
			break
		}
	}
	f, err := os.OpenFile(m.record, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(strings.Join(missing, "\n") + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for i, p := range missing {
		if i == len(missing)-1 && !dir {
			fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if fh != nil {
				fh.Close()
			}
			continue
		}
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// removeCreated removes the recorded mount points, newest first: files, and directories that
// are empty (a directory something else wrote into stays, and is reported). The record keeps
// what could not be removed.
func removeCreated(record string) error {
	data, err := os.ReadFile(record)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	seen := map[string]bool{}
	var kept, errs []string
	for i := len(lines) - 1; i >= 0; i-- {
		p := strings.TrimSpace(lines[i])
		if p == "" || seen[p] || !filepath.IsAbs(p) || p == "/" {
			continue
		}
		seen[p] = true
		err := os.Remove(p)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		kept = append([]string{p}, kept...)
		errs = append(errs, err.Error())
	}
	if len(kept) == 0 {
		if err := os.Remove(record); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	_ = os.WriteFile(record, []byte(strings.Join(kept, "\n")+"\n"), 0o644)
	return fmt.Errorf("mount points left on the host: %s", strings.Join(errs, "; "))
}

// safeJoin joins a subPath below base, refusing `..` escapes and absolute paths.
func safeJoin(base, sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("subPath %q is absolute", sub)
	}
	for _, part := range strings.Split(sub, "/") {
		if part == ".." {
			return "", fmt.Errorf("subPath %q escapes its volume", sub)
		}
	}
	return filepath.Join(base, sub), nil
}

// containerMounts returns the mounts of a container: the pod's /etc/hosts, /etc/resolv.conf,
// /etc/hostname and a private /dev/shm (unless a volume is mounted there), then its volume
// mounts, parents before children. Missing mount points are created on the host.
func (r *podRun) containerMounts(c *corev1.Container, env map[string]string) ([]shim.Mount, error) {
	vols := map[string]*corev1.Volume{}
	for i := range r.pod.Spec.Volumes {
		vols[r.pod.Spec.Volumes[i].Name] = &r.pod.Spec.Volumes[i]
	}
	taken := map[string]bool{}
	var volMounts []shim.Mount
	var dirs []bool
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %q: no such volume", vm.Name)
		}
		src, err := r.volumeSource(v)
		if err != nil {
			return nil, err
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = Expand(vm.SubPathExpr, MapLookup(env))
		}
		if sub != "" {
			if src, err = safeJoin(src, sub); err != nil {
				return nil, err
			}
			if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) && v.EmptyDir != nil {
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, err
				}
				_ = os.Chmod(src, 0o777)
			}
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("volume mount %q: %w", vm.Name, err)
		}
		target := filepath.Clean(vm.MountPath)
		volMounts = append(volMounts, shim.Mount{Source: src, Target: target, ReadOnly: vm.ReadOnly || isFileVolume(v)})
		dirs = append(dirs, st.IsDir())
		taken[target] = true
	}
	idx := make([]int, len(volMounts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return strings.Count(volMounts[idx[a]].Target, "/") < strings.Count(volMounts[idx[b]].Target, "/")
	})
	sorted := make([]shim.Mount, len(volMounts))
	for i, j := range idx {
		sorted[i] = volMounts[j]
		// A mount point inside another mount is made by the shim, in that mount.
		inside := false
		for _, k := range idx[:i] {
			if t := volMounts[k].Target; t == "/" || strings.HasPrefix(volMounts[j].Target, t+"/") {
				inside = true
			}
		}
		if !inside {
			if err := r.p.mountpoints.ensure(volMounts[j].Target, dirs[j]); err != nil {
				return nil, err
			}
		}
	}
	volMounts = sorted
	var mounts []shim.Mount
	for _, f := range []struct{ src, target string }{
		{filepath.Join(r.dir, "hosts"), "/etc/hosts"},
		{filepath.Join(r.dir, "resolv.conf"), "/etc/resolv.conf"},
		{filepath.Join(r.dir, "hostname"), "/etc/hostname"},
	} {
		if taken[f.target] {
			continue
		}
		if st, err := os.Stat(f.target); err != nil || st.IsDir() {
			continue // not on this host: not created (/etc is the host's)
		}
		mounts = append(mounts, shim.Mount{Source: f.src, Target: f.target, ReadOnly: f.target != "/etc/hosts"})
	}
	if !taken["/dev/shm"] {
		mounts = append(mounts, shim.Mount{Tmpfs: true, Target: "/dev/shm", Data: "mode=1777,size=64m"})
	}
	return append(mounts, volMounts...), nil
}

// volumeSource is the host path bind-mounted for a volume.
func (r *podRun) volumeSource(v *corev1.Volume) (string, error) {
	switch {
	case isFileVolume(v), v.EmptyDir != nil:
		return filepath.Join(r.dir, "volumes", v.Name), nil
	case v.HostPath != nil:
		return v.HostPath.Path, nil
	}
	return "", fmt.Errorf("volume %q: unsupported volume type", v.Name)
}
