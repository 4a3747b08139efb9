package podrunner

import (
	"context"
	"fmt"
	"sync"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeSource is an in-memory Source.
type fakeSource struct {
	mu      sync.Mutex
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
	tokens  int
	ttl     time.Duration
}

func newFakeSource() *fakeSource {
	return &fakeSource{cms: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, ttl: time.Hour}
}

func (f *fakeSource) addCM(ns, name string, data map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cms[ns+"/"+name] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
}

func (f *fakeSource) addSecret(ns, name string, data map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	f.secrets[ns+"/"+name] = s
}

func (f *fakeSource) ConfigMap(ns, name string) (*corev1.ConfigMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cm, ok := f.cms[ns+"/"+name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f *fakeSource) Secret(ns, name string) (*corev1.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (f *fakeSource) CreateToken(_ context.Context, ns, sa string, req *authv1.TokenRequest) (*authv1.TokenRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens++
	out := req.DeepCopy()
	out.Status.Token = fmt.Sprintf("token-%s-%s-%v-%d", ns, sa, req.Spec.Audiences, f.tokens)
	out.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(f.ttl))
	return out, nil
}
