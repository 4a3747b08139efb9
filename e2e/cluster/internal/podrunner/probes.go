package podrunner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeAll runs the container's startup probe, then its liveness and readiness probes, until
// ctx ends.
func (c *ctrRun) probeAll(ctx context.Context, inst *instance) {
	r := c.r
	if p := c.spec.StartupProbe; p != nil {
		ok := c.probeLoop(ctx, inst, "startup", p, func(success bool) bool {
			if success {
				return false // done
			}
			c.requestRestart("startup probe failed")
			return false
		})
		if !ok {
			return
		}
		r.mu.Lock()
		if c.inst == inst {
			c.started = true
			c.ready = c.spec.ReadinessProbe == nil
		}
		r.mu.Unlock()
		r.notify()
	}
	if p := c.spec.LivenessProbe; p != nil {
		go c.probeLoop(ctx, inst, "liveness", p, func(success bool) bool {
			if !success {
				c.requestRestart("liveness probe failed")
				return false
			}
			return true
		})
	}
	if p := c.spec.ReadinessProbe; p != nil {
		c.probeLoop(ctx, inst, "readiness", p, func(success bool) bool {
			r.mu.Lock()
			changed := c.inst == inst && c.ready != success
			if changed {
				c.ready = success
			}
			r.mu.Unlock()
			if changed {
				r.logf("container %s ready=%v", c.spec.Name, success)
				r.notify()
			}
			return true
		})
	}
}

// probeLoop probes every period and calls result each time the thresholds flip the result
// (readiness starts failed, liveness and startup start successful); result returns whether to
// go on. It returns whether the last result was a success (false when ctx ended first).
func (c *ctrRun) probeLoop(ctx context.Context, inst *instance, kind string, p *corev1.Probe, result func(bool) bool) bool {
	period := secondsOr(p.PeriodSeconds, 10)
	successes, failures := int32(0), int32(0)
	successThreshold, failureThreshold := p.SuccessThreshold, p.FailureThreshold
	if successThreshold <= 0 {
		successThreshold = 1
	}
	if failureThreshold <= 0 {
		failureThreshold = 3
	}
	current := kind != "readiness"
	reported := false
	if !c.r.sleep(ctx, time.Duration(p.InitialDelaySeconds)*time.Second) {
		return false
	}
	for {
		ok, err := c.r.probeOnce(ctx, c, p)
		if ctx.Err() != nil {
			return false
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			failures, successes = failures+1, 0
			c.r.debugf("container %s %s probe failed: %v", c.spec.Name, kind, err)
		}
		switch {
		case ok && successes >= successThreshold && (!current || !reported):
			current, reported = true, true
			if !result(true) {
				return true
			}
		case !ok && failures >= failureThreshold && (current || !reported):
			current, reported = false, true
			c.r.logf("container %s %s probe failed %d times: %v", c.spec.Name, kind, failures, err)
			if !result(false) {
				return false
			}
		}
		if !c.r.sleep(ctx, period) {
			return false
		}
	}
}

func secondsOr(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

// probeOnce runs one probe attempt.
func (r *podRun) probeOnce(ctx context.Context, c *ctrRun, p *corev1.Probe) (bool, error) {
	timeout := secondsOr(p.TimeoutSeconds, 1)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return r.httpGet(ctx, c, p.HTTPGet)
	case p.TCPSocket != nil:
		return r.tcpDial(ctx, c, p.TCPSocket.Host, p.TCPSocket.Port)
	case p.Exec != nil:
		code, err := r.execInContainer(ctx, c, p.Exec.Command, nil, io.Discard, io.Discard)
		if err != nil {
			return false, err
		}
		return code == 0, fmt.Errorf("exit code %d", code)
	case p.GRPC != nil:
		return r.grpcHealth(ctx, p.GRPC)
	}
	return false, fmt.Errorf("probe has no handler")
}

// port resolves a numeric or named container port.
func port(c *corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}

func (r *podRun) probeHost(host string) string {
	if host != "" {
		return host
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ipString()
}

var probeTransport = &http.Transport{
	Proxy:             nil,
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as the kubelet's
	DisableKeepAlives: true,
	DialContext:       (&net.Dialer{}).DialContext,
}

func (r *podRun) httpGet(ctx context.Context, c *ctrRun, h *corev1.HTTPGetAction) (bool, error) {
	n, err := port(&c.spec, h.Port)
	if err != nil {
		return false, err
	}
	scheme := "http"
	if h.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(r.probeHost(h.Host), strconv.Itoa(n))}
	full := u.String() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, full, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
		} else {
			req.Header.Set(hd.Name, hd.Value)
		}
	}
	client := &http.Client{Transport: probeTransport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, nil
	}
	return false, fmt.Errorf("HTTP probe %s: %s", full, resp.Status)
}

func (r *podRun) tcpDial(ctx context.Context, c *ctrRun, host string, p intstr.IntOrString) (bool, error) {
	n, err := port(&c.spec, p)
	if err != nil {
		return false, err
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(r.probeHost(host), strconv.Itoa(n)))
	if err != nil {
		return false, err
	}
	conn.Close()
	return true, nil
}

func (r *podRun) grpcHealth(ctx context.Context, g *corev1.GRPCAction) (bool, error) {
	conn, err := grpc.NewClient(net.JoinHostPort(r.probeHost(""), strconv.Itoa(int(g.Port))),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	svc := ""
	if g.Service != nil {
		svc = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		return false, err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return false, fmt.Errorf("gRPC health: %s", resp.Status)
	}
	return true, nil
}

// runHandler runs a lifecycle hook (exec, httpGet, sleep, tcpSocket) within ctx.
func (r *podRun) runHandler(ctx context.Context, c *ctrRun, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		code, err := r.execInContainer(ctx, c, h.Exec.Command, nil, io.Discard, io.Discard)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("exec hook %q exited with %d", h.Exec.Command, code)
		}
		return nil
	case h.HTTPGet != nil:
		ok, err := r.httpGet(ctx, c, h.HTTPGet)
		if !ok {
			return err
		}
		return nil
	case h.Sleep != nil:
		if !r.sleep(ctx, time.Duration(h.Sleep.Seconds)*time.Second) {
			return ctx.Err()
		}
		return nil
	case h.TCPSocket != nil:
		_, err := r.tcpDial(ctx, c, h.TCPSocket.Host, h.TCPSocket.Port)
		return err
	}
	return errors.New("lifecycle handler has no action")
}
