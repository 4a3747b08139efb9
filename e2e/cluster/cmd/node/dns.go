package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"legate.dev/e2e/cluster/internal/dnswhoami"
)

// dnsWhoami answers DNS queries on UDP port 53 (or $DNS_WHOAMI_LISTEN) like CoreDNS's whoami
// plugin, never forwarding: the CoreDNS stand-in. Its arguments (CoreDNS's `-conf FILE`) are
// ignored.
func dnsWhoami() int {
	addr := os.Getenv("DNS_WHOAMI_LISTEN")
	if addr == "" {
		addr = ":53"
	}
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dns-whoami:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "dns-whoami: answering on", conn.LocalAddr())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ch
		_ = conn.Close()
	}()
	_ = dnswhoami.Serve(conn)
	return 0
}
