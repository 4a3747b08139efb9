package podrunner

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ownedConditions are the pod conditions the runner sets; others (readiness gates,
// DisruptionTarget, ...) are kept from the API's pod.
var ownedConditions = []corev1.PodConditionType{
	corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady,
}

// snapshot returns the pod as the runner sees it: base (the API's latest pod, or the runner's
// copy) with the runner's status.
func (r *podRun) snapshot(base *corev1.Pod) *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	if base == nil {
		base = r.pod
	}
	out := base.DeepCopy()
	st := &out.Status
	st.ObservedGeneration = out.Generation
	st.HostIP = r.p.cfg.HostIP.String()
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	if ip := r.ipString(); ip != "" {
		st.PodIP = ip
		st.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	st.StartTime = r.startTime
	st.InitContainerStatuses = nil
	for _, c := range r.initCtrs {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.statusLocked())
	}
	st.ContainerStatuses = nil
	allReady := len(r.ctrs) > 0
	for _, c := range r.ctrs {
		cs := c.statusLocked()
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		allReady = allReady && cs.Ready
	}
	st.Phase = r.phaseLocked()
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		allReady = false
	}
	gatesReady := true
	for _, g := range out.Spec.ReadinessGates {
		found := false
		for _, c := range base.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				found = true
			}
		}
		gatesReady = gatesReady && found
	}
	initialized := r.initDone || len(r.initCtrs) == 0
	want := map[corev1.PodConditionType]bool{
		corev1.PodScheduled:              true,
		corev1.PodReadyToStartContainers: r.netReady && !r.terminal,
		corev1.PodInitialized:            initialized,
		corev1.ContainersReady:           allReady,
		corev1.PodReady:                  allReady && gatesReady,
	}
	var conds []corev1.PodCondition
	for _, c := range base.Status.Conditions {
		owned := false
		for _, t := range ownedConditions {
			owned = owned || c.Type == t
		}
		if !owned {
			conds = append(conds, c)
		}
	}
	for _, t := range ownedConditions {
		status := corev1.ConditionFalse
		if want[t] {
			status = corev1.ConditionTrue
		}
		cs, ok := r.conds[t]
		if !ok || cs.status != status {
			cs = condState{status: status, since: metav1.Now()}
			// Keep the scheduler's time for PodScheduled.
			for _, c := range base.Status.Conditions {
				if c.Type == t && c.Status == status && !c.LastTransitionTime.IsZero() {
					cs.since = c.LastTransitionTime
				}
			}
			r.conds[t] = cs
		}
		cond := corev1.PodCondition{Type: t, Status: status, LastTransitionTime: cs.since, ObservedGeneration: out.Generation}
		if status == corev1.ConditionFalse {
			switch t {
			case corev1.ContainersReady, corev1.PodReady:
				cond.Reason = "ContainersNotReady"
			case corev1.PodInitialized:
				cond.Reason = "ContainersNotInitialized"
			}
			if t == corev1.PodReady && allReady && !gatesReady {
				cond.Reason = "ReadinessGatesNotReady"
			}
		}
		conds = append(conds, cond)
	}
	st.Conditions = conds
	return out
}

// statusLocked is the container's status. Caller holds r.mu.
func (c *ctrRun) statusLocked() corev1.ContainerStatus {
	started := c.started
	cs := corev1.ContainerStatus{
		Name: c.spec.Name, Image: c.spec.Image, ImageID: c.imageID,
		State: *c.state.DeepCopy(), LastTerminationState: *c.lastState.DeepCopy(),
		Ready: c.ready, RestartCount: c.restartCount, Started: &started,
	}
	if c.inst != nil {
		cs.ContainerID = "legate://" + c.inst.id
	} else if t := c.state.Terminated; t != nil {
		cs.ContainerID = t.ContainerID
	}
	return cs
}

// phaseLocked computes the pod phase. Caller holds r.mu.
func (r *podRun) phaseLocked() corev1.PodPhase {
	if r.initFailed {
		return corev1.PodFailed
	}
	if !r.initDone && len(r.initCtrs) > 0 && !r.terminal {
		return corev1.PodPending
	}
	allDone, allZero, anyStarted := true, true, false
	for _, c := range r.ctrs {
		anyStarted = anyStarted || c.everStarted
		t := c.state.Terminated
		if !c.finished && !r.terminal {
			allDone = false
		}
		if t == nil || t.ExitCode != 0 {
			allZero = false
		}
	}
	switch {
	case allDone && allZero:
		return corev1.PodSucceeded
	case allDone:
		return corev1.PodFailed
	case anyStarted:
		return corev1.PodRunning
	}
	return corev1.PodPending
}

// notifier pushes the pod's status to the pod controller whenever it changes, until the pod is
// forgotten.
func (r *podRun) notifier(stop <-chan struct{}) {
	var last *corev1.Pod
	for {
		select {
		case <-stop:
			return
		case <-r.kick:
		}
		snap := r.snapshot(r.p.apiPod(r))
		if last != nil && equality.Semantic.DeepEqual(last.Status, snap.Status) {
			continue
		}
		last = snap
		if fn := r.p.notifyFunc(); fn != nil {
			fn(snap)
		}
	}
}
