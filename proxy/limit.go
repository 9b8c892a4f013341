package proxy

import (
	"net"
	"sync"
)

// limitListener bounds the client connections open at once: Accept waits
// while the bound is reached, so the kernel's backlog holds the rest. A
// connection's slot is freed when it is closed, which for a hijacked
// stream is when the stream ends.
//
// Its connections give back the accepted connection (NetConn), so that a
// hijacked stream is still copied socket to socket by the kernel (splice);
// a wrapper that hides it turns every stream into copies through a buffer.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, free: func() { <-l.slots }}, nil
}

// Close stops the listener; an Accept waiting for a slot returns.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}

// NetConn is the accepted connection.
func (c *limitConn) NetConn() net.Conn { return c.Conn }

// netConn unwraps a connection that wraps another (NetConn), so that
// io.Copy sees the socket's own ReadFrom and WriteTo.
func netConn(c net.Conn) net.Conn {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = w.NetConn()
	}
}
