package podrunner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestLog writes lines "line-0".."line-(n-1)", one second apart from t0.
func writeTestLog(t *testing.T, n int, t0 time.Time) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "current.log")
	w, err := newLogWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	w.now = func() time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for ; i < n; i++ {
		stream := "stdout"
		if i%2 == 1 {
			stream = "stderr"
		}
		w.line(stream, []byte("line-"+string(rune('0'+i))))
	}
	w.Close()
	return path
}

func TestLogWriterCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	w, _ := newLogWriter(path)
	long := strings.Repeat("x", maxLogLine+10)
	w.copy("stdout", strings.NewReader("a\nb\n"+long+"\nunterminated"))
	w.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5 (a, b, the long line in two, unterminated)", len(lines))
	}
	for i, want := range []string{"a", "b", long[:maxLogLine], long[maxLogLine:], "unterminated"} {
		ts, content, ok := parseLogLine([]byte(lines[i]))
		if !ok || string(content) != want || time.Since(ts) > time.Minute {
			t.Errorf("line %d = %q (%v %v), want content %q", i, lines[i], ts, ok, want)
		}
		if !strings.Contains(lines[i], " stdout ") {
			t.Errorf("line %d lacks the stream: %q", i, lines[i])
		}
	}
}

func TestReadLog(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	path := writeTestLog(t, 6, t0)
	all := "line-0\nline-1\nline-2\nline-3\nline-4\nline-5\n"
	cases := []struct {
		name string
		opts LogOptions
		want string
	}{
		{"all", LogOptions{Tail: -1}, all},
		{"tail 2", LogOptions{Tail: 2}, "line-4\nline-5\n"},
		{"tail more than lines", LogOptions{Tail: 100}, all},
		{"tail 0", LogOptions{Tail: 0}, ""},
		{"since", LogOptions{Tail: -1, Since: t0.Add(4 * time.Second)}, "line-4\nline-5\n"},
		{"since between", LogOptions{Tail: -1, Since: t0.Add(3500 * time.Millisecond)}, "line-4\nline-5\n"},
		{"tail then since", LogOptions{Tail: 3, Since: t0.Add(4 * time.Second)}, "line-4\nline-5\n"},
		{"limit bytes", LogOptions{Tail: -1, LimitBytes: 10}, "line-0\nlin"},
		{"limit bytes exact", LogOptions{Tail: -1, LimitBytes: 7}, "line-0\n"},
		{"timestamps", LogOptions{Tail: 1, Timestamps: true}, "2026-01-02T03:04:10Z line-5\n"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if err := readLog(context.Background(), path, c.opts, nil, &out); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if out.String() != c.want {
			t.Errorf("%s: got %q, want %q", c.name, out.String(), c.want)
		}
	}
}

func TestReadLogFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "current.log")
	w, _ := newLogWriter(path)
	w.line("stdout", []byte("first"))
	done := make(chan struct{})
	var out bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		errc <- readLog(context.Background(), path, LogOptions{Tail: -1, Follow: true}, done, &syncBuffer{b: &out})
	}()
	time.Sleep(300 * time.Millisecond)
	w.line("stdout", []byte("second"))
	time.Sleep(300 * time.Millisecond)
	w.line("stderr", []byte("third"))
	w.Close()
	close(done)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop after the writer finished")
	}
	if out.String() != "first\nsecond\nthird\n" {
		t.Errorf("followed %q", out.String())
	}
}

type syncBuffer struct{ b *bytes.Buffer }

func (s *syncBuffer) Write(p []byte) (int, error) { return s.b.Write(p) }
