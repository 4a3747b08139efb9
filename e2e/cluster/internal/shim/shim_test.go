package shim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case Subcommand:
			Main()
		case "spawn-parent":
			spawnParent()
		}
	}
	os.Exit(m.Run())
}

// spawnParent starts a shim for the spec in $SHIM_TEST_SPEC, prints its pid and sleeps: the
// test kills this process to check that the program dies with it.
func spawnParent() {
	var s Spec
	if err := json.Unmarshal([]byte(os.Getenv("SHIM_TEST_SPEC")), &s); err != nil {
		panic(err)
	}
	s.ParentPID = os.Getpid()
	cmd, h, err := Command(os.Args[0], []string{Subcommand}, &s)
	if err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	if err := h.Started(); err != nil {
		panic(err)
	}
	fmt.Println(cmd.Process.Pid)
	time.Sleep(time.Hour)
	os.Exit(0)
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount and UTS namespaces)")
	}
}

func u32(v uint32) *uint32 { return &v }

func TestShimEntersAndExecutes(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("10.1.2.3 shim-test-name\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `id -u; id -G; hostname; grep NoNewPrivs /proc/self/status; cat /etc/hosts; ` +
		`touch /shim-test-file 2>/dev/null && echo root-writable || echo root-read-only; ` +
		`touch /dev/shm/x && echo shm-writable; ls /dev/shm; pwd; echo "FOO=$FOO"`
	s := &Spec{
		Argv:         []string{"/bin/sh", "-c", script},
		Env:          []string{"FOO=bar", "PATH=/usr/bin:/bin"},
		Dir:          "/tmp",
		Hostname:     "pod-x",
		Mounts:       []Mount{{Source: hosts, Target: "/etc/hosts", ReadOnly: true}, {Tmpfs: true, Target: "/dev/shm", Data: "mode=1777,size=1m"}},
		ReadOnlyRoot: true,
		UID:          u32(65532), GID: u32(65532), Groups: []uint32{65532, 1234},
		NoNewPrivs: true,
		ParentPID:  os.Getpid(),
	}
	cmd, h, err := Command(os.Args[0], []string{Subcommand}, s)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		h.Close()
		t.Fatal(err)
	}
	if err := h.Started(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"65532\n", "65532 1234\n", "pod-x\n", "NoNewPrivs:\t1", "10.1.2.3 shim-test-name", "root-read-only", "shm-writable", "x\n", "/tmp\n", "FOO=bar"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if _, err := os.Stat("/shim-test-file"); err == nil {
		os.Remove("/shim-test-file")
		t.Error("the read-only root was written")
	}
	if data, _ := os.ReadFile("/etc/hosts"); strings.Contains(string(data), "shim-test-name") {
		t.Error("the bind mount leaked to the host")
	}
	if h, _ := os.Hostname(); h == "pod-x" {
		t.Error("the hostname leaked to the host")
	}
}

func TestShimStartError(t *testing.T) {
	needRoot(t)
	for _, s := range []*Spec{
		{Argv: []string{"/nonexistent/program"}},
		{Argv: []string{"/bin/true"}, Mounts: []Mount{{Source: "/nonexistent", Target: "/mnt"}}},
		{Argv: []string{"/bin/true"}, NetNS: "/run/netns/lgt-does-not-exist"},
	} {
		cmd, h, err := Command(os.Args[0], []string{Subcommand}, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			h.Close()
			t.Fatal(err)
		}
		err = h.Started()
		_ = cmd.Wait()
		if _, ok := err.(*StartError); !ok {
			t.Errorf("%v: Started() = %v, want a StartError", s.Argv, err)
		} else {
			t.Logf("start error: %v", err)
		}
	}
}

// TestParentDeathKillsProgram checks that the parent-death signal survives the credential
// change and the execve: killing the runner kills the container's program.
func TestParentDeathKillsProgram(t *testing.T) {
	needRoot(t)
	for _, uid := range []*uint32{nil, u32(65532)} {
		s := Spec{Argv: []string{"/bin/sleep", "300"}, Env: []string{"PATH=/bin"}, UID: uid, GID: uid}
		data, _ := json.Marshal(s)
		parent := exec.Command(os.Args[0], "spawn-parent")
		parent.Env = append(os.Environ(), "SHIM_TEST_SPEC="+string(data))
		stdout, _ := parent.StdoutPipe()
		if err := parent.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			parent.Process.Kill()
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(line))
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("program %d not running: %v", pid, err)
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "sleep" {
			t.Errorf("pid %d is %q, want sleep", pid, comm)
		}
		parent.Process.Kill()
		parent.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			// A zombie reparented to init still answers kill(0): check its state.
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z") {
				break
			}
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("uid %v: program %d survived its runner", uid, pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestShimProgramHiddenByMount: the program lives in a directory a mount hides (a state
// directory under /tmp, an emptyDir on /tmp), and so does a mount source.
func TestShimProgramHiddenByMount(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	data, err := os.ReadFile("/bin/cat")
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "cat")
	if err := os.WriteFile(prog, data, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "hosts")
	if err := os.WriteFile(src, []byte("hidden-source-ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Spec{
		Argv:      []string{prog, "/etc/hosts"},
		Mounts:    []Mount{{Tmpfs: true, Target: dir}, {Source: src, Target: "/etc/hosts"}},
		ParentPID: os.Getpid(),
	}
	cmd, h, err := Command(os.Args[0], []string{Subcommand}, s)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		h.Close()
		t.Fatal(err)
	}
	if err := h.Started(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || out.String() != "hidden-source-ok\n" {
		t.Fatalf("%v: %q", err, out.String())
	}
}
