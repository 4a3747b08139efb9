// Package podrunner is the kubelet of Legate's local test cluster: a virtual-kubelet provider
// that runs each pod's containers as host processes, each pod in a network namespace of its
// own on the node's bridge, each container in a mount namespace of its own (the host's file
// system plus the pod's volumes, /etc/hosts, /etc/resolv.conf and a private /dev/shm).
//
// # What a pod gets
//
//   - Network: namespace lgt-<12 hex of the pod UID> (`ip netns`), a veth pair whose host side
//     lgtv<8 hex> joins the bridge and whose pod side is eth0 with an address of the pod CIDR
//     (leased in <state>/ipam/<ip>, so a restarted runner does not reuse a live address), lo
//     up, no default route: the pod reaches the bridge subnet on-link (other pods, the host's
//     bridge address where the API server listens) and nothing else. net.* sysctls of the pod
//     security context are written inside the namespace.
//   - Files: <state>/pods/<uid>/ holds hosts (rewritten in place when Services' endpoints
//     change: hostsdns), resolv.conf (nameserver 127.0.0.1: lookups fail fast), hostname,
//     volumes/<name>/ (configMap, secret, downwardAPI, projected incl. service account tokens
//     from the TokenRequest API refreshed at 80% of their lifetime, emptyDir, medium Memory as
//     a tmpfs mounted there; hostPath is the host path), resynced every few seconds with
//     temporary-file-and-rename writes; containers/<name>/current.log and previous.log (one
//     `<RFC3339Nano> <stream> <line>` per line), containers/<name>/pid.
//   - Processes: `legate-node pod-exec` (package shim) is started in new mount and UTS
//     namespaces, joins the pod's network namespace, mounts, switches to the container's
//     runAsUser/runAsGroup/supplemental groups/fsGroup, sets no_new_privs when
//     allowPrivilegeEscalation is false, re-arms the parent-death signal (SIGKILL) and executes
//     the program from the image table, keeping its PID: the program leads its own process
//     group, which the runner signals (preStop, SIGTERM, SIGKILL after the grace period).
//
// # Cleanup contract (what `down` relies on)
//
// Everything the runner makes is under its --state-dir or named with its prefixes:
//
//   - processes: the container PIDs in <state>/pods/*/containers/*/pid ("PID STARTTIME", the
//     start time from /proc/PID/stat so a reused PID is never killed), each a process group
//     leader; anything else still running in a pod's network namespace (`ip netns pids`);
//     all die with the runner anyway (parent-death signal) except what they daemonized;
//   - network namespaces lgt-* (also named in <state>/pods/*/netns) and host veths lgtv*;
//   - mounts: tmpfs emptyDirs under <state>/pods/*/volumes/ (container mounts live in the
//     containers' mount namespaces and vanish with them; `ip netns` itself keeps its
//     /run/netns mount, as it always does);
//   - mount points the runner had to create on the host (a volume mounted where the host has
//     no such directory or file): <state>/created-dirs, one path per line, outermost first,
//     each recorded before it is created. They are removed newest first, files always,
//     directories only when empty.
//
// Cleanup(stateDir) does all of that, idempotently and safely after a crash: kill the recorded
// PIDs and their groups, kill what runs in and delete every lgt-* namespace, delete every
// lgtv* link, unmount what is mounted under the state directory, remove the created mount
// points, and remove <state>/pods and <state>/ipam. A runner that starts sweeps the same way
// but keeps the pod directories and leases (the pod controller recreates its pods, each with
// its former address).
package podrunner
