package podrunner

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultPath is the PATH of a container whose image table entry and spec set none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// envInput is what a container's environment is made of besides its spec.
type envInput struct {
	pod      *corev1.Pod
	src      Source
	imageEnv map[string]string
	apiHost  string
	apiPort  int
	podIP    string
	hostIP   string
}

// configError is a container configuration that cannot be resolved yet (a missing ConfigMap,
// Secret or key): the container waits with reason CreateContainerConfigError.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// orderedEnv keeps the first-set order of keys, later sets overriding values.
type orderedEnv struct {
	keys []string
	vals map[string]string
}

func (o *orderedEnv) set(k, v string) {
	if o.vals == nil {
		o.vals = map[string]string{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *orderedEnv) list() []string {
	out := make([]string, 0, len(o.keys))
	for _, k := range o.keys {
		out = append(out, k+"="+o.vals[k])
	}
	return out
}

// containerEnv resolves the environment of container c (Kubernetes semantics: envFrom, then
// env in order with `$(VAR)` expansion over the variables defined before and the service
// variables; the image's env below all of them). It returns the KEY=VALUE list and the map
// used to expand the container's command and args.
func containerEnv(in envInput, c *corev1.Container) ([]string, map[string]string, error) {
	pod := in.pod
	service := map[string]string{
		"KUBERNETES_SERVICE_HOST":       in.apiHost,
		"KUBERNETES_SERVICE_PORT":       strconv.Itoa(in.apiPort),
		"KUBERNETES_SERVICE_PORT_HTTPS": strconv.Itoa(in.apiPort),
	}
	declared := map[string]string{}
	var spec orderedEnv
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := in.src.ConfigMap(pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if optional && apierrors.IsNotFound(err) {
					continue
				}
				return nil, nil, &configError{fmt.Sprintf("configmap %q: %v", from.ConfigMapRef.Name, err)}
			}
			data = cm.Data
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := in.src.Secret(pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if optional && apierrors.IsNotFound(err) {
					continue
				}
				return nil, nil, &configError{fmt.Sprintf("secret %q: %v", from.SecretRef.Name, err)}
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for _, k := range sortedKeys(data) {
			name := from.Prefix + k
			if len(validation.IsEnvVarName(name)) != 0 {
				continue
			}
			declared[name] = data[k]
			spec.set(name, data[k])
		}
	}
	lookup := func(name string) (string, bool) {
		if v, ok := declared[name]; ok {
			return v, true
		}
		v, ok := service[name]
		return v, ok
	}
	for _, e := range c.Env {
		v, ok, err := envValue(in, c, e, lookup)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		declared[e.Name] = v
		spec.set(e.Name, v)
	}

	var out orderedEnv
	out.set("PATH", DefaultPath)
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	out.set("HOSTNAME", hostname)
	for _, k := range sortedKeys(in.imageEnv) {
		out.set(k, in.imageEnv[k])
	}
	for _, k := range sortedKeys(service) {
		out.set(k, service[k])
	}
	for _, k := range spec.keys {
		out.set(k, spec.vals[k])
	}
	return out.list(), out.vals, nil
}

// envValue resolves one env entry; ok is false for an optional reference that is absent.
func envValue(in envInput, c *corev1.Container, e corev1.EnvVar, lookup func(string) (string, bool)) (string, bool, error) {
	pod := in.pod
	if e.ValueFrom == nil {
		return Expand(e.Value, lookup), true, nil
	}
	vf := e.ValueFrom
	switch {
	case vf.FieldRef != nil:
		v, err := podField(pod, vf.FieldRef.FieldPath, in.podIP, in.hostIP)
		if err != nil {
			return "", false, &configError{fmt.Sprintf("env %s: %v", e.Name, err)}
		}
		return v, true, nil
	case vf.ResourceFieldRef != nil:
		target := c
		if vf.ResourceFieldRef.ContainerName != "" {
			target = findContainer(pod, vf.ResourceFieldRef.ContainerName)
		}
		v, err := resourceField(target, vf.ResourceFieldRef)
		if err != nil {
			return "", false, &configError{fmt.Sprintf("env %s: %v", e.Name, err)}
		}
		return v, true, nil
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := in.src.ConfigMap(pod.Namespace, ref.Name)
		if err != nil {
			if optional && apierrors.IsNotFound(err) {
				return "", false, nil
			}
			return "", false, &configError{fmt.Sprintf("env %s: configmap %q: %v", e.Name, ref.Name, err)}
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if b, okb := cm.BinaryData[ref.Key]; okb {
				return string(b), true, nil
			}
			if optional {
				return "", false, nil
			}
			return "", false, &configError{fmt.Sprintf("env %s: couldn't find key %s in ConfigMap %s/%s", e.Name, ref.Key, pod.Namespace, ref.Name)}
		}
		return v, true, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := in.src.Secret(pod.Namespace, ref.Name)
		if err != nil {
			if optional && apierrors.IsNotFound(err) {
				return "", false, nil
			}
			return "", false, &configError{fmt.Sprintf("env %s: secret %q: %v", e.Name, ref.Name, err)}
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", false, &configError{fmt.Sprintf("env %s: couldn't find key %s in Secret %s/%s", e.Name, ref.Key, pod.Namespace, ref.Name)}
		}
		return string(v), true, nil
	}
	return "", false, &configError{fmt.Sprintf("env %s: unsupported valueFrom", e.Name)}
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
