package podrunner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// A container log file holds one line per line of output:
//
//	<RFC3339Nano timestamp, UTC> <stdout|stderr> <the line without its newline>
//
// A line longer than maxLogLine is cut into several.
const maxLogLine = 16 * 1024

// logWriter appends timestamped lines to a container's log file; stdout and stderr may be
// copied concurrently.
type logWriter struct {
	mu  sync.Mutex
	f   *os.File
	now func() time.Time
}

func newLogWriter(path string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f, now: time.Now}, nil
}

// line writes one log line (one write call, so readers see whole lines).
func (l *logWriter) line(stream string, content []byte) {
	var b bytes.Buffer
	b.Grow(len(content) + 48)
	b.WriteString(l.now().UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.Write(content)
	b.WriteByte('\n')
	l.mu.Lock()
	_, _ = l.f.Write(b.Bytes())
	l.mu.Unlock()
}

// copy logs r line by line until EOF.
func (l *logWriter) copy(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			l.line(stream, bytes.TrimSuffix(line, []byte{'\n'}))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (l *logWriter) Close() error { return l.f.Close() }

// LogOptions select what readLog returns (the kubelet's semantics).
type LogOptions struct {
	// Tail is the number of last lines (before the Since filter); negative is all.
	Tail int
	// LimitBytes caps the bytes returned; 0 is no cap.
	LimitBytes int64
	// Timestamps prefixes each line with its RFC3339Nano timestamp and a space.
	Timestamps bool
	// Since drops lines logged before it (zero keeps all).
	Since time.Time
	// Follow keeps reading new lines until done is closed and the file is drained.
	Follow bool
}

// parseLogLine splits a log file line (without newline) into timestamp and content.
func parseLogLine(line []byte) (time.Time, []byte, bool) {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return time.Time{}, nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return time.Time{}, nil, false
	}
	_, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return t, nil, true
	}
	return t, content, true
}

// tailOffset returns the offset of the first of the last n lines of f.
func tailOffset(f *os.File, n int) (int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	ring := make([]int64, n)
	count := 0
	var off int64
	br := bufio.NewReaderSize(f, 64*1024)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			ring[count%n] = off
			count++
		}
		off += int64(len(line))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if count <= n {
		return 0, nil
	}
	return ring[count%n], nil
}

// readLog copies the log file at path to w according to opts. With Follow it waits for more
// lines until done is closed (the writer finished) and everything is read, or ctx ends.
func readLog(ctx context.Context, path string, opts LogOptions, done <-chan struct{}, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var start int64
	if opts.Tail == 0 {
		if !opts.Follow {
			return nil
		}
		start, err = f.Seek(0, io.SeekEnd)
		if err != nil {
			return err
		}
	} else if opts.Tail > 0 {
		if start, err = tailOffset(f, opts.Tail); err != nil {
			return err
		}
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(f, 64*1024)
	var pending []byte
	written := int64(0)
	emit := func(line []byte) (bool, error) {
		ts, content, ok := parseLogLine(line)
		if !ok {
			return true, nil
		}
		if !opts.Since.IsZero() && ts.Before(opts.Since) {
			return true, nil
		}
		var out []byte
		if opts.Timestamps {
			out = append(out, ts.Format(time.RFC3339Nano)...)
			out = append(out, ' ')
		}
		out = append(append(out, content...), '\n')
		if opts.LimitBytes > 0 && written+int64(len(out)) >= opts.LimitBytes {
			_, err := w.Write(out[:opts.LimitBytes-written])
			return false, err
		}
		written += int64(len(out))
		_, err := w.Write(out)
		if fl, ok := w.(interface{ Flush() }); ok && opts.Follow {
			fl.Flush()
		}
		return true, err
	}
	for {
		chunk, err := br.ReadBytes('\n')
		if len(chunk) > 0 {
			pending = append(pending, chunk...)
			if pending[len(pending)-1] == '\n' {
				more, werr := emit(pending[:len(pending)-1])
				pending = pending[:0]
				if werr != nil || !more {
					return werr
				}
			}
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !opts.Follow {
			return nil
		}
		select {
		case <-done:
			// The writer is finished: drain once more, then stop.
			rest, _ := io.ReadAll(br)
			pending = append(pending, rest...)
			for len(pending) > 0 {
				line, after, found := bytes.Cut(pending, []byte{'\n'})
				if !found {
					break
				}
				if more, werr := emit(line); werr != nil || !more {
					return werr
				}
				pending = after
			}
			return nil
		case <-ctx.Done():
			return nil
		case <-time.After(150 * time.Millisecond):
		}
	}
}
