package shim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

func init() {
	// The shim must execute the program from the thread the runner forked (the one whose
	// parent-death signal is set and whose namespaces the shim changes): lock main to it.
	if len(os.Args) > 1 && os.Args[1] == Subcommand {
		runtime.LockOSThread()
	}
}

// Main runs the shim (os.Args[1] == Subcommand). It never returns on success; on failure it
// reports on fd 3 and exits with status 126.
func Main() {
	report := os.NewFile(3, "report")
	fail := func(err error) {
		msg := "pod-exec: " + err.Error()
		if report != nil {
			_, _ = report.WriteString(msg)
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(126)
	}
	if report != nil {
		unix.CloseOnExec(3)
	}
	spec, err := readSpec()
	if err != nil {
		fail(err)
	}
	// The program may live where a volume gets mounted (a state directory under /tmp and an
	// emptyDir on /tmp): hold it open from before the mounts.
	prog, err := unix.Open(spec.Argv[0], unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(fmt.Errorf("exec %s: %w", spec.Argv[0], err))
	}
	if err := enter(spec); err != nil {
		fail(err)
	}
	path := spec.Argv[0]
	if !samePath(prog, path) {
		// Hidden by a mount: execute the file held open (fine for binaries; a script's
		// interpreter could not reopen it).
		path = fmt.Sprintf("/proc/self/fd/%d", prog)
	}
	if err := syscall.Exec(path, spec.Argv, spec.Env); err != nil {
		fail(fmt.Errorf("exec %s: %w", spec.Argv[0], err))
	}
}

// samePath reports whether path still names the file open as fd.
func samePath(fd int, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func readSpec() (*Spec, error) {
	f := os.NewFile(4, "spec")
	if f == nil {
		return nil, fmt.Errorf("no spec on fd 4")
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the spec: %w", err)
	}
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decoding the spec: %w", err)
	}
	if len(s.Argv) == 0 || !filepath.IsAbs(s.Argv[0]) {
		return nil, fmt.Errorf("program %q is not an absolute path", s.Argv)
	}
	return &s, nil
}

// enter does everything but the exec, on the locked main thread.
func enter(s *Spec) error {
	// Refuse to touch mounts unless this process has a mount namespace of its own.
	if same, err := sameNS("mnt"); err != nil || same {
		return fmt.Errorf("not in a mount namespace of its own (started without CLONE_NEWNS?): %v", err)
	}
	if s.NetNS != "" {
		fd, err := unix.Open(s.NetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open netns %s: %w", s.NetNS, err)
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("setns %s: %w", s.NetNS, err)
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / rprivate: %w", err)
	}
	if s.Hostname != "" {
		if same, err := sameNS("uts"); err == nil && !same {
			if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
				return fmt.Errorf("sethostname: %w", err)
			}
		}
	}
	// Open every source first: a mount (e.g. an emptyDir on /tmp) may hide the paths of the
	// sources of the next ones.
	srcs := make([]int, len(s.Mounts))
	for i, m := range s.Mounts {
		srcs[i] = -1
		if m.Tmpfs {
			continue
		}
		fd, err := unix.Open(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		srcs[i] = fd
	}
	for i, m := range s.Mounts {
		if err := mount(m, srcs[i]); err != nil {
			return err
		}
	}
	if s.ReadOnlyRoot {
		if err := remountReadOnly("/"); err != nil {
			return err
		}
	}
	if s.UID != nil || s.GID != nil || s.Groups != nil {
		groups := make([]int, len(s.Groups))
		for i, g := range s.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups %v: %w", groups, err)
		}
		if s.GID != nil {
			if err := syscall.Setgid(int(*s.GID)); err != nil {
				return fmt.Errorf("setgid %d: %w", *s.GID, err)
			}
		}
		if s.UID != nil {
			if err := syscall.Setuid(int(*s.UID)); err != nil {
				return fmt.Errorf("setuid %d: %w", *s.UID, err)
			}
		}
	}
	dir := s.Dir
	if dir == "" {
		dir = "/"
	}
	// A working directory inside a mount is made there (the runner made the others).
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if s.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	// A change of credentials clears the parent-death signal: set it (again) last, on this
	// thread, and make sure the runner did not die before.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if s.ParentPID != 0 && os.Getppid() != s.ParentPID {
		return fmt.Errorf("the runner (pid %d) is gone", s.ParentPID)
	}
	return nil
}

// mount makes one mount; a bind mount's source is the descriptor src. A missing target (inside
// an earlier mount: the runner created the others on the host) is created.
func mount(m Mount, src int) error {
	if err := ensureTarget(m, src); err != nil {
		return err
	}
	if m.Tmpfs {
		if err := unix.Mount("tmpfs", m.Target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, m.Data); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", m.Target, err)
		}
		return nil
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", src), m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", m.Source, m.Target, err)
	}
	if m.ReadOnly {
		return remountReadOnly(m.Target)
	}
	return nil
}

func ensureTarget(m Mount, src int) error {
	if _, err := os.Stat(m.Target); err == nil || !os.IsNotExist(err) {
		return err
	}
	dir := true
	if src >= 0 {
		var st unix.Stat_t
		if err := unix.Fstat(src, &st); err != nil {
			return fmt.Errorf("mount source %s: %w", m.Source, err)
		}
		dir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	if dir {
		if err := os.MkdirAll(m.Target, 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", m.Target, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(m.Target), 0o755); err != nil {
		return fmt.Errorf("mount point %s: %w", m.Target, err)
	}
	f, err := os.OpenFile(m.Target, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", m.Target, err)
	}
	return f.Close()
}

// remountReadOnly makes the mount at target read-only, keeping its other per-mount flags.
func remountReadOnly(target string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", target, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", target, err)
	}
	return nil
}

// sameNS reports whether this process shares its parent's namespace of the given kind.
func sameNS(kind string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/self/ns/"+kind, &a); err != nil {
		return false, err
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", os.Getppid(), kind), &b); err != nil {
		return false, err
	}
	return a.Ino == b.Ino && a.Dev == b.Dev, nil
}
