package podrunner

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// podField returns the value of a downward API field path for the pod (env fieldRef and
// downwardAPI volume items). podIP and hostIP are the runner's (the pod object's status may
// not have them yet).
func podField(pod *corev1.Pod, path, podIP, hostIP string) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	return "", fmt.Errorf("unsupported downward API field path %q", path)
}

// subscript parses `prefix['key']` (the quotes may be single or double).
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"[")
	if !ok || !strings.HasSuffix(rest, "]") || len(rest) < 3 {
		return "", false
	}
	rest = rest[:len(rest)-1]
	if (rest[0] == '\'' || rest[0] == '"') && rest[len(rest)-1] == rest[0] {
		return rest[1 : len(rest)-1], true
	}
	return "", false
}

// formatMap renders labels or annotations as the kubelet does: sorted `key="value"` lines.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%s", k, strconv.Quote(m[k]))
	}
	return b.String()
}

// Node allocatable, the default for resource limits a container does not set.
var (
	nodeCPU    = resource.MustParse("64")
	nodeMemory = resource.MustParse("64Gi")
)

// resourceField returns a container resource (resourceFieldRef) in units of the divisor,
// rounded up, as the kubelet does; an unset limit is the node's allocatable.
func resourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef %q: no container", ref.Resource)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, set := list[corev1.ResourceName(name)]
	switch name {
	case "cpu":
		if !set {
			q = nodeCPU
			if kind == "requests" {
				q = resource.MustParse("0")
			}
		}
		div := ref.Divisor
		if div.IsZero() {
			div = resource.MustParse("1")
		}
		v := int64(math.Ceil(float64(q.MilliValue()) / float64(div.MilliValue())))
		return strconv.FormatInt(v, 10), nil
	case "memory", "ephemeral-storage":
		if !set {
			q = nodeMemory
			if kind == "requests" {
				q = resource.MustParse("0")
			}
		}
		div := ref.Divisor
		if div.IsZero() {
			div = resource.MustParse("1")
		}
		v := int64(math.Ceil(float64(q.Value()) / float64(div.Value())))
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
}
