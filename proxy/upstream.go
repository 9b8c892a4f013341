package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Address is a listen or dial address: tcp://host:port or unix:///path.
type Address struct {
	Network string // "tcp" or "unix"
	Addr    string // host:port or a socket path
}

func (a Address) String() string {
	if a.Network == "unix" {
		return "unix://" + a.Addr
	}
	return "tcp://" + a.Addr
}

// ParseAddress reads tcp://host:port or unix:///path.
func ParseAddress(s string) (Address, error) {
	if !strings.Contains(s, "://") {
		return Address{}, fmt.Errorf("address %q: want tcp://host:port or unix:///absolute/path", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: %w", s, err)
	}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" || u.Path != "" && u.Path != "/" {
			return Address{}, fmt.Errorf("address %q: want tcp://host:port", s)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return Address{}, fmt.Errorf("address %q: %w", s, err)
		}
		return Address{Network: "tcp", Addr: u.Host}, nil
	case "unix":
		if u.Host != "" || u.Path == "" {
			return Address{}, fmt.Errorf("address %q: want unix:///absolute/path", s)
		}
		return Address{Network: "unix", Addr: u.Path}, nil
	}
	return Address{}, fmt.Errorf("address %q: scheme must be tcp:// or unix://", s)
}

// Upstream is the Docker daemon. Ordinary requests go over a pool of
// kept-alive connections, one request at a time per connection, written
// and read by the calling goroutine; requests that may become streams get
// a fresh connection of their own.
type Upstream struct {
	addr   Address
	dialer net.Dialer

	mu   sync.Mutex
	idle []*upConn
}

// maxIdle bounds the pooled connections to the daemon.
const maxIdle = 64

// staleAfter is how long a pooled connection may sit idle before it is
// checked for a close by the daemon before being used again. A request that
// cannot be sent twice (a write) checks always: a daemon that restarted
// just now closed the connection, and the write would fail on it.
const staleAfter = time.Second

// upstreamHost is the Host header sent to the daemon, which ignores it.
const upstreamHost = "docker"

type upConn struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

// NewUpstream prepares connections to the daemon at addr.
func NewUpstream(addr Address, dialTimeout time.Duration) *Upstream {
	return &Upstream{addr: addr, dialer: net.Dialer{Timeout: dialTimeout}}
}

// Dial opens a new connection to the daemon.
func (u *Upstream) Dial(ctx context.Context) (net.Conn, error) {
	return u.dialer.DialContext(ctx, u.addr.Network, u.addr.Addr)
}

// get returns a pooled connection that is still open, or a new one; check
// asks for the open check however recently the connection was used.
func (u *Upstream) get(ctx context.Context, check bool) (*upConn, bool, error) {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			break
		}
		c := u.idle[n-1]
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		if !check && time.Since(c.lastUsed) < staleAfter || c.alive() {
			return c, true, nil
		}
		c.conn.Close()
	}
	conn, err := u.Dial(ctx)
	if err != nil {
		return nil, false, err
	}
	return &upConn{conn: conn, br: bufio.NewReaderSize(conn, 8<<10),
		bw: bufio.NewWriterSize(conn, 4<<10)}, false, nil
}

// alive reports whether the daemon has not closed an idle connection: a
// peek at the socket that does not wait finds neither data nor its end. (A
// read with a deadline already passed would not even look: Go reports the
// timeout without reading.)
func (c *upConn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}

func (u *Upstream) put(c *upConn) {
	c.lastUsed = time.Now()
	u.mu.Lock()
	if len(u.idle) < maxIdle {
		u.idle = append(u.idle, c)
		c = nil
	}
	u.mu.Unlock()
	if c != nil {
		c.conn.Close()
	}
}

// CloseIdle drops pooled connections.
func (u *Upstream) CloseIdle() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// Request is one request for the daemon.
type Request struct {
	Method string
	// Target is the path with its query.
	Target string
	// Header holds the few headers sent besides Host and Content-Length.
	Header http.Header
	Body   []byte
}

// RoundTrip sends a request over a pooled connection and reads the
// answer's head. The answer's body must be closed; the connection goes
// back to the pool once the body has been read to its end. ctx bounds the
// whole exchange, body included.
func (u *Upstream) RoundTrip(ctx context.Context, req *Request) (*http.Response, error) {
	resp, err := u.roundTrip(ctx, req)
	if err != nil && req.Method == http.MethodGet || err != nil && req.Method == http.MethodHead {
		// A kept-alive connection the daemon closed just now: a read is
		// safe to send again on a fresh one.
		var reused *reusedError
		if errors.As(err, &reused) {
			resp, err = u.roundTrip(ctx, req)
		}
	}
	return resp, err
}

// reusedError marks a failure on a pooled connection before any answer.
type reusedError struct{ err error }

func (e *reusedError) Error() string { return e.err.Error() }
func (e *reusedError) Unwrap() error { return e.err }

func (u *Upstream) roundTrip(ctx context.Context, req *Request) (*http.Response, error) {
	c, reused, err := u.get(ctx, req.Method != http.MethodGet && req.Method != http.MethodHead)
	if err != nil {
		return nil, err
	}
	// Cancelling ctx (deadline, client gone) breaks off the exchange.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if reused {
			return nil, &reusedError{err}
		}
		return nil, err
	}
	if err := writeRequest(c.bw, req); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: req.Method})
	if err != nil {
		return fail(err)
	}
	resp.Body = &pooledBody{ReadCloser: resp.Body, u: u, c: c, stop: stop,
		keep: !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols,
		eof:  resp.Body == http.NoBody}
	return resp, nil
}

// writeRequest writes an HTTP/1.1 request with only the headers sockpin
// chose; nothing of the client's framing is passed on.
func writeRequest(bw *bufio.Writer, req *Request) error {
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.Target)
	bw.WriteString(" HTTP/1.1\r\nHost: " + upstreamHost + "\r\n")
	for k, vs := range req.Header {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if req.Body != nil || req.Method == http.MethodPost || req.Method == http.MethodPut {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.Itoa(len(req.Body)))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(req.Body)
	return bw.Flush()
}

// pooledBody returns the connection to the pool when the answer was read
// to its end, and closes it otherwise.
type pooledBody struct {
	io.ReadCloser
	u    *Upstream
	c    *upConn
	stop func() bool
	keep bool
	eof  bool
	done bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Buffered reports how much of the answer has arrived and not been read
// yet; a relay flushes to its client only when this is zero.
func (b *pooledBody) Buffered() int { return b.c.br.Buffered() }

func (b *pooledBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	b.ReadCloser.Close()
	if b.stop() && b.keep && b.eof {
		b.u.put(b.c)
		return nil
	}
	return b.c.conn.Close()
}

// Ping asks the daemon whether it is up.
func (u *Upstream) Ping(ctx context.Context) error {
	resp, err := u.RoundTrip(ctx, &Request{Method: http.MethodGet, Target: "/_ping"})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon answered _ping with %s", resp.Status)
	}
	return nil
}
