package podrunner

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// fileData is one file of a rendered volume.
type fileData struct {
	Data []byte
	Mode os.FileMode
}

// missingError is a volume source that does not exist (yet): the pod waits and retries.
type missingError struct{ msg string }

func (e *missingError) Error() string { return e.msg }

// volumeRenderer renders the file volumes of a pod (configMap, secret, downwardAPI, projected).
type volumeRenderer struct {
	pod    *corev1.Pod
	src    Source
	tokens *tokenCache
	podIP  string
	hostIP string
}

const defaultFileMode = 0o644

// isFileVolume tells the volumes whose content the runner writes.
func isFileVolume(v *corev1.Volume) bool {
	return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
}

// files renders a file volume: relative path → content and mode.
func (r *volumeRenderer) files(ctx context.Context, v *corev1.Volume) (map[string]fileData, error) {
	out := map[string]fileData{}
	var err error
	switch {
	case v.ConfigMap != nil:
		err = r.configMap(out, v.ConfigMap.Name, v.ConfigMap.Items, mode(v.ConfigMap.DefaultMode), v.ConfigMap.Optional)
	case v.Secret != nil:
		err = r.secret(out, v.Secret.SecretName, v.Secret.Items, mode(v.Secret.DefaultMode), v.Secret.Optional)
	case v.DownwardAPI != nil:
		err = r.downward(out, v.DownwardAPI.Items, mode(v.DownwardAPI.DefaultMode))
	case v.Projected != nil:
		def := mode(v.Projected.DefaultMode)
		for _, s := range v.Projected.Sources {
			switch {
			case s.ConfigMap != nil:
				err = r.configMap(out, s.ConfigMap.Name, s.ConfigMap.Items, def, s.ConfigMap.Optional)
			case s.Secret != nil:
				err = r.secret(out, s.Secret.Name, s.Secret.Items, def, s.Secret.Optional)
			case s.DownwardAPI != nil:
				err = r.downward(out, s.DownwardAPI.Items, def)
			case s.ServiceAccountToken != nil:
				err = r.token(ctx, out, s.ServiceAccountToken, def)
			default:
				err = fmt.Errorf("projected volume %q: unsupported source", v.Name)
			}
			if err != nil {
				break
			}
		}
	default:
		return nil, fmt.Errorf("volume %q: not a file volume", v.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", v.Name, err)
	}
	return out, nil
}

func mode(m *int32) os.FileMode {
	if m == nil {
		return defaultFileMode
	}
	return os.FileMode(*m) & os.ModePerm
}

func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & os.ModePerm
}

// project adds the keys of data (all, or the items) to out.
func project(out map[string]fileData, kind, name string, data map[string][]byte, items []corev1.KeyToPath, def os.FileMode, optional bool) error {
	if len(items) == 0 {
		for k, v := range data {
			out[k] = fileData{Data: v, Mode: def}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return &missingError{fmt.Sprintf("%s %q has no key %q", kind, name, it.Key)}
		}
		out[clean(it.Path)] = fileData{Data: v, Mode: itemMode(it.Mode, def)}
	}
	return nil
}

func (r *volumeRenderer) configMap(out map[string]fileData, name string, items []corev1.KeyToPath, def os.FileMode, opt *bool) error {
	optional := opt != nil && *opt
	cm, err := r.src.ConfigMap(r.pod.Namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			if optional {
				return nil
			}
			return &missingError{fmt.Sprintf("configmap %q not found", r.pod.Namespace+"/"+name)}
		}
		return err
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return project(out, "configmap", name, data, items, def, optional)
}

func (r *volumeRenderer) secret(out map[string]fileData, name string, items []corev1.KeyToPath, def os.FileMode, opt *bool) error {
	optional := opt != nil && *opt
	s, err := r.src.Secret(r.pod.Namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			if optional {
				return nil
			}
			return &missingError{fmt.Sprintf("secret %q not found", r.pod.Namespace+"/"+name)}
		}
		return err
	}
	return project(out, "secret", name, s.Data, items, def, optional)
}

func (r *volumeRenderer) downward(out map[string]fileData, items []corev1.DownwardAPIVolumeFile, def os.FileMode) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podField(r.pod, it.FieldRef.FieldPath, r.podIP, r.hostIP)
		case it.ResourceFieldRef != nil:
			v, err = resourceField(findContainer(r.pod, it.ResourceFieldRef.ContainerName), it.ResourceFieldRef)
		default:
			err = fmt.Errorf("downwardAPI item %q has no source", it.Path)
		}
		if err != nil {
			return err
		}
		out[clean(it.Path)] = fileData{Data: []byte(v), Mode: itemMode(it.Mode, def)}
	}
	return nil
}

func (r *volumeRenderer) token(ctx context.Context, out map[string]fileData, s *corev1.ServiceAccountTokenProjection, def os.FileMode) error {
	exp := int64(3600)
	if s.ExpirationSeconds != nil {
		exp = *s.ExpirationSeconds
	}
	tok, err := r.tokens.get(ctx, r.pod, s.Audience, exp)
	if err != nil {
		return fmt.Errorf("service account token: %w", err)
	}
	out[clean(s.Path)] = fileData{Data: []byte(tok), Mode: def}
	return nil
}

// clean makes a volume item path relative and free of `..`.
func clean(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}
