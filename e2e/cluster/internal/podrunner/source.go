package podrunner

import (
	"context"
	"fmt"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
)

// Source is where a pod's ConfigMaps, Secrets and service account tokens come from. A missing
// object is reported with a Kubernetes NotFound error (apierrors.IsNotFound).
type Source interface {
	ConfigMap(namespace, name string) (*corev1.ConfigMap, error)
	Secret(namespace, name string) (*corev1.Secret, error)
	CreateToken(ctx context.Context, namespace, serviceAccount string, req *authv1.TokenRequest) (*authv1.TokenRequest, error)
}

// ClientSource reads through listers when they are set (informer caches), else through the
// client; tokens always come from the client's TokenRequest API.
type ClientSource struct {
	Client     kubernetes.Interface
	ConfigMaps corev1listers.ConfigMapLister
	Secrets    corev1listers.SecretLister
}

// ConfigMap implements Source.
func (s *ClientSource) ConfigMap(namespace, name string) (*corev1.ConfigMap, error) {
	if s.ConfigMaps != nil {
		return s.ConfigMaps.ConfigMaps(namespace).Get(name)
	}
	return s.Client.CoreV1().ConfigMaps(namespace).Get(context.TODO(), name, metav1.GetOptions{})
}

// Secret implements Source.
func (s *ClientSource) Secret(namespace, name string) (*corev1.Secret, error) {
	if s.Secrets != nil {
		return s.Secrets.Secrets(namespace).Get(name)
	}
	return s.Client.CoreV1().Secrets(namespace).Get(context.TODO(), name, metav1.GetOptions{})
}

// CreateToken implements Source.
func (s *ClientSource) CreateToken(ctx context.Context, namespace, sa string, req *authv1.TokenRequest) (*authv1.TokenRequest, error) {
	if s.Client == nil {
		return nil, fmt.Errorf("no client for service account tokens")
	}
	return s.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
}
