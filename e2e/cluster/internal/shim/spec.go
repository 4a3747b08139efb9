// Package shim is `legate-node pod-exec`: the small program that puts a container's process
// into its pod. The runner starts it in a fresh mount and UTS namespace (clone flags); the shim
// then joins the pod's network namespace, makes every mount private, mounts the pod's volumes,
// /etc/hosts, /etc/resolv.conf and a private /dev/shm, optionally makes the root read-only,
// changes to the container's user and groups, sets no_new_privs and the parent-death signal,
// and executes the container's program in place (same PID, so the program is the process
// group leader the runner signals).
//
// The runner hands the Spec over on file descriptor 4 (a memfd) and reads start errors on file
// descriptor 3 (a pipe closed on exec): EOF without data means the program is running.
package shim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Subcommand is the argument that selects the shim in a multi-call binary.
const Subcommand = "pod-exec"

// Spec is everything the shim needs to run one program in a pod.
type Spec struct {
	// Argv is the program (absolute path) and its arguments.
	Argv []string `json:"argv"`
	// Env is the program's whole environment (KEY=VALUE).
	Env []string `json:"env"`
	// Dir is the working directory ("" is /).
	Dir string `json:"dir,omitempty"`
	// NetNS is the path of the network namespace to join ("" stays in the host's).
	NetNS string `json:"netns,omitempty"`
	// Hostname is set in the new UTS namespace when not empty.
	Hostname string `json:"hostname,omitempty"`
	// Mounts are made in order, after `/` is made recursively private.
	Mounts []Mount `json:"mounts,omitempty"`
	// ReadOnlyRoot remounts `/` read-only (its other mounts keep their flags).
	ReadOnlyRoot bool `json:"readOnlyRoot,omitempty"`
	// UID, GID and Groups are the credentials to switch to; nil UID keeps root.
	UID    *uint32  `json:"uid,omitempty"`
	GID    *uint32  `json:"gid,omitempty"`
	Groups []uint32 `json:"groups,omitempty"`
	// NoNewPrivs sets PR_SET_NO_NEW_PRIVS before exec.
	NoNewPrivs bool `json:"noNewPrivs,omitempty"`
	// ParentPID is the runner's PID: the shim exits if its parent is already gone.
	ParentPID int `json:"parentPID"`
}

// Mount is a bind mount of Source (a file or a directory) onto Target, or a tmpfs.
type Mount struct {
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	Tmpfs    bool   `json:"tmpfs,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// Data is the tmpfs option string (e.g. "mode=1777,size=64m").
	Data string `json:"data,omitempty"`
}

// Command prepares (does not start) the shim for spec. self is the multi-call binary and
// prefix the arguments that select the shim (e.g. ["pod-exec"]). The returned cleanup closes
// the runner's ends of the descriptors; call Started after cmd.Start to learn whether the
// program was executed.
func Command(self string, prefix []string, spec *Spec) (*exec.Cmd, *Handoff, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.MemfdCreate("legate-pod-exec-spec", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("memfd: %w", err)
	}
	specFile := os.NewFile(uintptr(fd), "spec")
	if _, err := specFile.Write(data); err != nil {
		specFile.Close()
		return nil, nil, err
	}
	if _, err := specFile.Seek(0, io.SeekStart); err != nil {
		specFile.Close()
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		specFile.Close()
		return nil, nil, err
	}
	cmd := exec.Command(self, prefix...)
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{errW, specFile} // fd 3, fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	return cmd, &Handoff{errR: errR, errW: errW, spec: specFile}, nil
}

// Handoff holds the runner's side of the descriptors given to a shim.
type Handoff struct {
	errR, errW, spec *os.File
}

// Started must be called after cmd.Start succeeded: it closes the child's descriptors on the
// runner's side and waits until the shim either executed the program (nil) or reported why it
// could not (the error). It returns promptly: the shim reports or executes right away.
func (h *Handoff) Started() error {
	h.errW.Close()
	h.spec.Close()
	defer h.errR.Close()
	msg, err := io.ReadAll(h.errR)
	if err != nil {
		return fmt.Errorf("reading the shim's start report: %w", err)
	}
	if len(msg) > 0 {
		return &StartError{Msg: string(msg)}
	}
	return nil
}

// Close releases the descriptors when cmd.Start failed.
func (h *Handoff) Close() {
	h.errW.Close()
	h.spec.Close()
	h.errR.Close()
}

// StartError is a failure reported by the shim before the program ran (mount, credentials,
// exec).
type StartError struct{ Msg string }

func (e *StartError) Error() string { return e.Msg }
