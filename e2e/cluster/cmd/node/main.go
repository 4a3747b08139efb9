// Command legate-node is the local test cluster's only Node: a pod runner in place of the
// kubelet (virtual-kubelet with a provider that runs containers as host processes in network
// namespaces), a load-balancer controller and a hosts-file "DNS".
//
//	legate-node run [flags]   the node (see `legate-node run -h`)
//	legate-node pod-exec      internal: enters a pod's namespaces and executes a container's program
//	legate-node pause         sleeps until SIGTERM or SIGINT (a stand-in for images that must not run)
//	legate-node dns-whoami    answers DNS queries on UDP :53 with the querier's address, never
//	                          forwarding (the stand-in for CoreDNS)
//	legate-node cleanup --state-dir DIR
//	                          kills, deletes and unmounts what a node left (podrunner.Cleanup)
package main

import (
	"fmt"
	"os"

	"legate.dev/e2e/cluster/internal/shim"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case shim.Subcommand:
		shim.Main()
	case "pause":
		pause()
	case "dns-whoami":
		os.Exit(dnsWhoami())
	case "run":
		os.Exit(run(os.Args[2:]))
	case "cleanup":
		os.Exit(cleanup(os.Args[2:]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: legate-node run [flags] | pause | dns-whoami | cleanup --state-dir DIR | pod-exec (internal)")
	os.Exit(2)
}
