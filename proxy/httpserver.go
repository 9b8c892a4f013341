package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// httpServer serves HTTP/1.1 connections one request at a time, in the
// connection's own goroutine. Requests are parsed by net/http's parser
// (http.ReadRequest) with the checks net/http's server adds, so what is
// accepted is what that server accepts; what it leaves out is the
// machinery a proxy does not need per request (a background reader per
// connection, response buffering and header sorting), which costs more
// than the filtering itself.
type httpServer struct {
	handler           http.Handler
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	log               func(r *http.Request, status int, reason string)
	// acceptFailed is told of an accept that failed for want of resources
	// (descriptors, memory); the server waits and accepts again.
	acceptFailed func(err error, wait time.Duration)

	mu       sync.Mutex
	conns    map[*serverConn]bool // true while a request is being served
	closing  bool
	wg       sync.WaitGroup
	listener []net.Listener
}

type serverConn struct {
	conn net.Conn
	lr   *io.LimitedReader
	br   *bufio.Reader
	bw   *bufio.Writer
}

var errServerClosed = http.ErrServerClosed

// retryAccept reports whether a failed accept may succeed later: a
// timeout, or a lack of descriptors, buffers or memory, or a connection
// that went away before it was accepted.
func retryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// serve accepts connections on l until the server shuts down.
func (s *httpServer) serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errServerClosed
	}
	s.listener = append(s.listener, l)
	s.mu.Unlock()
	var wait time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return errServerClosed
			}
			if !retryAccept(err) {
				return err
			}
			// Out of descriptors (a flood of connections, on this listener or
			// the metrics one) is not a reason to stop serving: wait, longer
			// each time up to a second, as connections close.
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			if s.acceptFailed != nil {
				s.acceptFailed(err, wait)
			}
			time.Sleep(wait)
			continue
		}
		wait = 0
		sc := &serverConn{conn: c, lr: &io.LimitedReader{R: c}}
		sc.br = bufio.NewReaderSize(sc.lr, 4<<10)
		sc.bw = bufio.NewWriterSize(c, 4<<10)
		if !s.track(sc, false) {
			c.Close()
			return errServerClosed
		}
		s.wg.Add(1)
		go s.serveConn(sc)
	}
}

// track records a connection's state; it reports false when the server is
// shutting down and an idle connection should close.
func (s *httpServer) track(sc *serverConn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = make(map[*serverConn]bool)
	}
	if s.closing && !active {
		return false
	}
	s.conns[sc] = active
	return true
}

func (s *httpServer) forget(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

func (s *httpServer) serveConn(sc *serverConn) {
	defer s.wg.Done()
	defer s.forget(sc)
	hijacked := false
	defer func() {
		if !hijacked {
			sc.conn.Close()
		}
	}()
	remote := sc.conn.RemoteAddr().String()
	for first := true; ; first = false {
		req, ok := s.readRequest(sc, first, remote)
		if !ok {
			return
		}
		if !s.track(sc, true) {
			return
		}
		w := &responseWriter{sc: sc, req: req, header: make(http.Header, 8), contentLength: -1}
		if !s.serveOne(w, req) {
			return
		}
		if w.hijacked {
			hijacked = true
			return
		}
		if err := w.finish(); err != nil || w.closeAfter || !drainBody(req) {
			return
		}
		if !s.track(sc, false) {
			return
		}
	}
}

// serveOne runs the handler. A handler that panics with
// http.ErrAbortHandler (an answer it cannot complete, such as a stream whose
// daemon went away) gets its connection closed without the end of the
// answer, so the client sees it was cut; it reports false then.
func (s *httpServer) serveOne(w *responseWriter, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			ok = false
		}
	}()
	s.handler.ServeHTTP(w, req)
	return true
}

// readRequest waits for the next request (idle timeout), then reads its
// head (header timeout, size limit). It answers malformed requests itself
// and reports false when the connection should close.
func (s *httpServer) readRequest(sc *serverConn, first bool, remote string) (*http.Request, bool) {
	wait := s.idleTimeout
	if first || wait == 0 {
		wait = s.readHeaderTimeout
	}
	// What is already buffered counts towards the header limit.
	sc.lr.N = int64(s.maxHeaderBytes) + 4096 - int64(sc.br.Buffered())
	_ = sc.conn.SetReadDeadline(deadline(wait))
	if _, err := sc.br.Peek(1); err != nil {
		return nil, false
	}
	_ = sc.conn.SetReadDeadline(deadline(s.readHeaderTimeout))
	req, err := http.ReadRequest(sc.br)
	tooLarge := sc.lr.N <= 0
	sc.lr.N = math.MaxInt64
	if err != nil {
		status, reason := http.StatusBadRequest, "malformed HTTP request: "+err.Error()
		if tooLarge || errors.Is(err, bufio.ErrBufferFull) {
			status, reason = http.StatusRequestHeaderFieldsTooLarge, "request headers are too large"
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			reason = "request headers arrived too slowly"
		}
		s.refuse(sc, &http.Request{Method: "-", RequestURI: "-", RemoteAddr: remote}, status, reason)
		return nil, false
	}
	_ = sc.conn.SetReadDeadline(time.Time{})
	req.RemoteAddr = remote
	if reason := checkRequest(req); reason != "" {
		status := http.StatusBadRequest
		if req.ProtoMajor != 1 {
			status = http.StatusHTTPVersionNotSupported
		}
		s.refuse(sc, req, status, reason)
		return nil, false
	}
	if req.Header.Get("Expect") == "100-continue" && req.ContentLength != 0 {
		sc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if sc.bw.Flush() != nil {
			return nil, false
		}
	}
	return req, true
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// checkRequest applies the checks net/http's server makes after parsing.
func checkRequest(req *http.Request) string {
	if req.ProtoMajor != 1 {
		return "only HTTP/1 is served"
	}
	if req.ProtoAtLeast(1, 1) && req.Host == "" {
		return "missing required Host header"
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return "malformed Host header"
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "invalid header value"
			}
		}
	}
	return ""
}

// refuse answers a request the server could not read, in Docker's error
// shape, and records it.
func (s *httpServer) refuse(sc *serverConn, req *http.Request, status int, reason string) {
	body := fmt.Sprintf("{\"message\":%q}\n", "sockpin: "+reason)
	fmt.Fprintf(sc.bw, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
		"Connection: close\r\n\r\n%s", status, http.StatusText(status), len(body), body)
	_ = sc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = sc.bw.Flush()
	if s.log != nil {
		s.log(req, status, reason)
	}
}

// drainBody reads what the handler left of a request body, so the next
// request starts where it should; a large remainder closes the connection
// instead.
func drainBody(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	n, err := io.Copy(io.Discard, io.LimitReader(req.Body, 256<<10))
	if err != nil || n == 256<<10 {
		return false
	}
	return true
}

// shutdown stops accepting, closes idle connections, and waits for the
// ones serving a request until ctx is done; then it closes them all.
func (s *httpServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, l := range s.listener {
		l.Close()
	}
	for sc, active := range s.conns {
		if !active {
			sc.conn.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			// Connections that finished a request since are idle now.
			s.mu.Lock()
			for sc, active := range s.conns {
				if !active {
					sc.conn.Close()
				}
			}
			s.mu.Unlock()
		case <-ctx.Done():
			s.closeAll()
			<-done
			return ctx.Err()
		}
	}
}

func (s *httpServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		sc.conn.Close()
	}
}

// responseWriter writes one response: Content-Length when the handler set
// it, chunked otherwise (HTTP/1.1), or delimited by closing (HTTP/1.0).
type responseWriter struct {
	sc            *serverConn
	req           *http.Request
	header        http.Header
	wroteHeader   bool
	status        int
	contentLength int64
	written       int64
	chunked       bool
	closeAfter    bool
	hijacked      bool
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	w.wroteHeader, w.status = true, status
	h := w.header
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			h.Del("Content-Length")
		}
	}
	noBody := w.req.Method == http.MethodHead || status == http.StatusNoContent ||
		status == http.StatusNotModified || status < 200
	w.closeAfter = w.closeAfter || w.req.Close || !w.req.ProtoAtLeast(1, 1) && !keepAlive10(w.req) ||
		httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if !noBody && w.contentLength < 0 {
		if w.req.ProtoAtLeast(1, 1) {
			w.chunked = true
			h.Set("Transfer-Encoding", "chunked")
		} else {
			w.closeAfter = true
		}
	}
	if w.closeAfter {
		h.Set("Connection", "close")
	} else if !w.req.ProtoAtLeast(1, 1) {
		h.Set("Connection", "keep-alive")
	}
	bw := w.sc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(status))
	bw.WriteString("\r\n")
	for k, vv := range h {
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
}

func keepAlive10(req *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(req.Header["Connection"], "keep-alive")
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.req.Method == http.MethodHead || len(p) == 0 {
		return len(p), nil
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	bw := w.sc.bw
	if !w.chunked {
		return bw.Write(p)
	}
	head := strconv.FormatInt(int64(len(p)), 16) + "\r\n"
	if len(head)+len(p)+2 <= bw.Available() {
		bw.WriteString(head)
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return len(p), err
	}
	// A large chunk goes out in one gathered write, not through the buffer.
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	bufs := net.Buffers{[]byte(head), p, []byte("\r\n")}
	if _, err := bufs.WriteTo(w.sc.conn); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finish completes the response and reports a write error.
func (w *responseWriter) finish() error {
	if !w.wroteHeader {
		w.header.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.sc.bw.WriteString("0\r\n\r\n")
	}
	if w.contentLength >= 0 && w.written != w.contentLength && w.req.Method != http.MethodHead {
		w.closeAfter = true
	}
	return w.sc.bw.Flush()
}

// Flush sends what is buffered (http.Flusher, for streams).
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.sc.bw.Flush()
}

// FlushError is Flush reporting the write error (for ResponseController).
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.sc.bw.Flush()
}

// Hijack hands the connection over (http.Hijacker).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.wroteHeader {
		return nil, nil, errors.New("response already started")
	}
	w.hijacked = true
	return w.sc.conn, bufio.NewReadWriter(w.sc.br, w.sc.bw), nil
}

// WatchClose calls onClose if the client hangs up while a stream is
// relayed and nothing is being read from it: a follower of a quiet log or
// a waiter on a running container would otherwise only be noticed when the
// daemon next sends something. The returned stop must be called before the
// connection is read again.
func (w *responseWriter) WatchClose(onClose func()) (stop func()) {
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Peek consumes nothing: a pipelined next request stays buffered.
		if _, err := w.sc.br.Peek(1); err != nil && !stopping.Load() {
			onClose()
		}
	}()
	return func() {
		stopping.Store(true)
		_ = w.sc.conn.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = w.sc.conn.SetReadDeadline(time.Time{})
	}
}

// SetReadDeadline bounds reading the request body.
func (w *responseWriter) SetReadDeadline(t time.Time) error { return w.sc.conn.SetReadDeadline(t) }

// SetWriteDeadline bounds writing the response.
func (w *responseWriter) SetWriteDeadline(t time.Time) error { return w.sc.conn.SetWriteDeadline(t) }
