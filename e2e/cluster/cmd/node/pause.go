package main

import (
	"os"
	"os/signal"
	"syscall"
)

// pause sleeps until SIGTERM or SIGINT, then exits 0.
func pause() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	os.Exit(0)
}
