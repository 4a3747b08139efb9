// Package ipcmd runs iproute2's `ip` with a timeout, its output in the error.
package ipcmd

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Run runs `ip args...` (at most 15 s); the error carries the command and its output.
func Run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
