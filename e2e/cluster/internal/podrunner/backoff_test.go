package podrunner

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := NewBackoff()
	s := time.Second
	steps := []struct{ ran, want time.Duration }{
		{0, s}, {0, 2 * s}, {s, 4 * s}, {9 * s, 8 * s}, {0, 10 * s}, {0, 10 * s},
		{10 * s, s}, {0, 2 * s}, {time.Minute, s},
	}
	for i, st := range steps {
		if got := b.Next(st.ran); got != st.want {
			t.Errorf("step %d (ran %v): %v, want %v", i, st.ran, got, st.want)
		}
	}
}
