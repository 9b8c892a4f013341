package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// Upstream is the Docker daemon: a pool of kept-alive connections for
// ordinary requests, and fresh connections for requests that may become
// streams.
type Upstream struct {
	addr      Address
	dialer    net.Dialer
	transport *http.Transport
}

// upstreamHost is the Host header sent to the daemon, which ignores it.
const upstreamHost = "docker"

// NewUpstream prepares connections to the daemon at addr.
func NewUpstream(addr Address, dialTimeout time.Duration) *Upstream {
	u := &Upstream{addr: addr, dialer: net.Dialer{Timeout: dialTimeout}}
	u.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return u.Dial(ctx)
		},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return u
}

// Dial opens a new connection to the daemon.
func (u *Upstream) Dial(ctx context.Context) (net.Conn, error) {
	return u.dialer.DialContext(ctx, u.addr.Network, u.addr.Addr)
}

// RoundTrip sends a request over a pooled connection.
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	return u.transport.RoundTrip(req)
}

// NewRequest builds a request for the daemon; target is a path with an
// optional query.
func NewRequest(ctx context.Context, method, target string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	return http.NewRequestWithContext(ctx, method, "http://"+upstreamHost+target, rd)
}

// Ping asks the daemon whether it is up.
func (u *Upstream) Ping(ctx context.Context) error {
	req, err := NewRequest(ctx, http.MethodGet, "/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := u.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon answered _ping with %s", resp.Status)
	}
	return nil
}

// CloseIdle drops pooled connections.
func (u *Upstream) CloseIdle() { u.transport.CloseIdleConnections() }
