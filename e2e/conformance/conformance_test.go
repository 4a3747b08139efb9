// Package conformance runs the official Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance v1.5.1) against Legate in the cluster that KUBECONFIG
// names. Run it through ./scripts/conformance, which boots the local cluster, installs Legate
// and passes the flags; the suite's own flags (--gateway-class, --conformance-profiles,
// --supported-features, --exempt-features, --skip-tests, --run-test, --report-output,
// --organization, --project, --url, --version, --contact, ...) are accepted as they are.
package conformance

import (
	"os"
	"testing"
	"time"

	"sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
)

func TestConformance(t *testing.T) {
	if os.Getenv("KUBECONFIG") == "" {
		t.Skip("SKIPPED: KUBECONFIG is not set; run ./scripts/conformance")
	}
	opts := conformance.DefaultOptions(t)
	opts.TimeoutConfig = timeouts()
	conformance.RunConformanceWithOptions(t, opts)
}

// timeouts are the suite's defaults, except where this single-machine cluster (pods as host
// processes on 2 cores) needs longer: creating many namespaces and pods at once.
func timeouts() config.TimeoutConfig {
	t := config.DefaultTimeoutConfig()
	t.NamespacesMustBeReady = 5 * time.Minute
	return t
}
