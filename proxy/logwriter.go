package proxy

import (
	"io"
	"sync"
	"time"
)

// LogWriter buffers log lines and writes them out at most every interval
// (or sooner when much is buffered), so that a busy proxy makes one write
// for many audit lines instead of one per request. Close writes what is
// left; a crash loses at most one interval of lines.
type LogWriter struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	stop chan struct{}
	done chan struct{}
}

// logFlushAt is the buffered size that triggers a write before the tick.
const logFlushAt = 64 << 10

// NewLogWriter starts a writer that flushes to w every interval.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Flush()
			case <-l.stop:
				l.Flush()
				return
			}
		}
	}()
	return l
}

// Write buffers p (one log line, as slog writes it).
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, p...)
	full := len(l.buf) >= logFlushAt
	l.mu.Unlock()
	if full {
		l.Flush()
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (l *LogWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) == 0 {
		return
	}
	_, _ = l.w.Write(l.buf)
	l.buf = l.buf[:0]
	if cap(l.buf) > 4*logFlushAt {
		l.buf = nil
	}
}

// Close flushes and stops the writer.
func (l *LogWriter) Close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	return nil
}
