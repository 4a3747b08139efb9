package podrunner

import "time"

// Backoff is a container's restart delay: Initial, doubled at each restart up to Max, back to
// Initial once the container ran for ResetAfter.
type Backoff struct {
	Initial, Max, ResetAfter time.Duration
	cur                      time.Duration
}

// NewBackoff is the runner's restart backoff: 1 s doubling to 10 s, reset after 10 s of running.
func NewBackoff() *Backoff {
	return &Backoff{Initial: time.Second, Max: 10 * time.Second, ResetAfter: 10 * time.Second}
}

// Next returns the delay before restarting a container that ran for ran.
func (b *Backoff) Next(ran time.Duration) time.Duration {
	switch {
	case ran >= b.ResetAfter || b.cur == 0:
		b.cur = b.Initial
	default:
		b.cur *= 2
		if b.cur > b.Max {
			b.cur = b.Max
		}
	}
	return b.cur
}
