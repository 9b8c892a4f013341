package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// side is one way to reach the daemon: directly, through the proxy, or
// through the bare relay.
type side struct {
	name    string
	network string
	addr    string
	client  *http.Client
}

func newSide(name, network, addr string, conns int) side {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return side{name: name, network: network, addr: addr, client: &http.Client{
		Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: conns,
			DisableCompression: true}}}
}

func (s side) dial() (net.Conn, error) { return net.DialTimeout(s.network, s.addr, 5*time.Second) }

// do sends one request and reads the whole answer; a status other than
// want is an error.
func (s side) do(ctx context.Context, method, path, body string, want int) ([]byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != want {
		err = fmt.Errorf("%s %s through %s: status %d: %s", method, path, s.name, resp.StatusCode,
			strings.TrimSpace(string(out)))
	}
	return out, err
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startSides starts the proxy and the relay and prepares the three sides.
func (b *bench) startSides(ctx context.Context) error {
	policy, err := b.benchPolicy()
	if err != nil {
		return fmt.Errorf("preparing the bench policy: %w", err)
	}
	listenNet, listenAddr := "unix", filepath.Join(b.dir, "proxy.sock")
	relayNet, relayAddr := "unix", filepath.Join(b.dir, "relay.sock")
	if b.cfg.listen == "tcp" {
		listenNet, relayNet = "tcp", "tcp"
		if listenAddr, err = freePort(); err != nil {
			return err
		}
		if relayAddr, err = freePort(); err != nil {
			return err
		}
	}
	metrics, err := freePort()
	if err != nil {
		return err
	}
	audit, err := os.Create(filepath.Join(b.dir, "audit.log"))
	if err != nil {
		return err
	}
	listenURL := "unix://" + listenAddr
	if listenNet == "tcp" {
		listenURL = "tcp://" + listenAddr
	}
	b.proxy = exec.Command(b.cfg.proxyBin, "-policy", policy, "-listen", listenURL,
		"-upstream", "unix://"+b.cfg.docker, "-metrics-listen", "tcp://"+metrics)
	b.proxy.Stderr = audit
	if err := b.proxy.Start(); err != nil {
		return fmt.Errorf("starting the proxy: %w", err)
	}
	if err := waitListening(listenNet, listenAddr); err != nil {
		return fmt.Errorf("the proxy did not start (see %s): %w", audit.Name(), err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b.relay = exec.Command(self, "relay", relayNet, relayAddr, b.cfg.docker)
	if err := b.relay.Start(); err != nil {
		return fmt.Errorf("starting the relay: %w", err)
	}
	if err := waitListening(relayNet, relayAddr); err != nil {
		return fmt.Errorf("the relay did not start: %w", err)
	}
	conns := b.cfg.clients + 2
	b.sides = []side{
		newSide("direct", "unix", b.cfg.docker, conns),
		newSide("proxy", listenNet, listenAddr, conns),
		newSide("relay", relayNet, relayAddr, conns),
	}
	b.say("proxy pid %d on %s://%s, relay on %s; audit log %s", b.proxy.Process.Pid, listenNet,
		listenAddr, relayAddr, audit.Name())
	// Idle memory: started, one request served, then left alone.
	if _, err := b.sides[1].do(ctx, http.MethodGet, "/_ping", "", http.StatusOK); err != nil {
		return err
	}
	time.Sleep(time.Second)
	b.idleRSS, err = rss(b.proxy.Process.Pid)
	return err
}

func waitListening(network, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveRelay is a byte relay to the daemon with no filtering: what any
// extra hop costs, for reference.
func serveRelay(ctx context.Context, network, addr, upstream string) error {
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			return nil
		}
		go func() {
			u, err := net.Dial("unix", upstream)
			if err != nil {
				c.Close()
				return
			}
			go func() { io.Copy(u, c); u.Close() }()
			io.Copy(c, u)
			c.Close()
		}()
	}
}

// rss reads a process's resident memory in bytes.
func rss(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
