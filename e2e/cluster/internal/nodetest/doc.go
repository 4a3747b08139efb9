// Package nodetest holds the end-to-end test of legate-node on a running local cluster
// (e2e/cluster/up). It runs only when LEGATE_E2E_KUBECONFIG names the cluster's admin kubeconfig
// and LEGATE_E2E_IMAGES its image table (the test adds an entry for a Python web server):
//
//	kc=$(e2e/cluster/up)
//	LEGATE_E2E_KUBECONFIG=$kc LEGATE_E2E_IMAGES=/tmp/legate-cluster/images.json \
//	  go test ./internal/nodetest/ -v
//	e2e/cluster/down
package nodetest
