package podrunner

import (
	"context"
	"fmt"
	"sync"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
)

// tokenCache holds a pod's service account tokens (TokenRequest API), refreshed once 80% of
// their lifetime has passed; a failed refresh keeps a token that is still valid.
type tokenCache struct {
	src Source
	now func() time.Time

	mu     sync.Mutex
	tokens map[string]*cachedToken
}

type cachedToken struct {
	token     string
	refreshAt time.Time
	expires   time.Time
}

func newTokenCache(src Source) *tokenCache {
	return &tokenCache{src: src, now: time.Now, tokens: map[string]*cachedToken{}}
}

func (c *tokenCache) get(ctx context.Context, pod *corev1.Pod, audience string, expSeconds int64) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	key := fmt.Sprintf("%s/%s/%s/%d", pod.Namespace, sa, audience, expSeconds)
	now := c.now()
	c.mu.Lock()
	cached := c.tokens[key]
	c.mu.Unlock()
	if cached != nil && now.Before(cached.refreshAt) {
		return cached.token, nil
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &expSeconds,
		BoundObjectRef:    &authv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.src.CreateToken(ctx, pod.Namespace, sa, req)
	if err != nil || resp.Status.Token == "" {
		if err == nil {
			err = fmt.Errorf("empty token")
		}
		if cached != nil && now.Before(cached.expires) {
			return cached.token, nil
		}
		return "", err
	}
	exp := resp.Status.ExpirationTimestamp.Time
	if exp.IsZero() || !exp.After(now) {
		exp = now.Add(time.Duration(expSeconds) * time.Second)
	}
	t := &cachedToken{token: resp.Status.Token, expires: exp, refreshAt: now.Add(exp.Sub(now) * 8 / 10)}
	c.mu.Lock()
	c.tokens[key] = t
	c.mu.Unlock()
	return t.token, nil
}
