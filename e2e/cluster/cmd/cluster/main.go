// Command cluster boots and tears down Legate's local test cluster (see e2e/cluster/README.md).
//
//	cluster up   [--state-dir DIR] [--bin-dir DIR] [--image PATTERN=PROGRAM]...   prints the kubeconfig path
//	cluster down [--state-dir DIR] [--keep-logs DIR]
//	cluster leftovers [--state-dir DIR]                                            exit 1 if anything is left
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"legate.dev/e2e/cluster/internal/cluster"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet("cluster "+verb, flag.ExitOnError)
	var c cluster.Config
	var images multi
	fs.StringVar(&c.StateDir, "state-dir", "", "where the cluster lives (default $LEGATE_CLUSTER_DIR or /var/lib/legate-cluster)")
	self, _ := os.Executable()
	fs.StringVar(&c.BinDir, "bin-dir", filepath.Dir(self), "the directory holding the kube and legate-node binaries")
	fs.Var(&images, "image", "an image table entry PATTERN=PROGRAM [ARGS...] (repeatable), e.g. 'legate:*=target/debug/legate'")
	keepLogs := fs.String("keep-logs", "", "down: copy every log of the cluster into this directory first")
	_ = fs.Parse(os.Args[2:])
	c.Images = images
	c.Defaults()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch verb {
	case "up":
		kubeconfig, err := cluster.Up(ctx, &c, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cluster up: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(kubeconfig)
	case "down":
		if *keepLogs != "" {
			if err := cluster.CopyLogs(&c, *keepLogs); err != nil {
				fmt.Fprintf(os.Stderr, "keep logs: %v\n", err)
			}
		}
		if err := cluster.Down(&c, os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "cluster down: %v\n", err)
			os.Exit(1)
		}
	case "leftovers":
		left := cluster.Leftovers(&c)
		for _, l := range left {
			fmt.Println(l)
		}
		if len(left) > 0 {
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	_, _ = io.WriteString(os.Stderr, "usage: cluster up|down|leftovers [flags]\n")
	os.Exit(2)
}
