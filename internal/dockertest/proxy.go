package dockertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"
)

// ProxyOptions configures StartProxy.
type ProxyOptions struct {
	// Policy is the path of the policy file; empty means the module's
	// policy.yaml.
	Policy string
	// Upstream is the daemon socket, as a path or a unix:// URL; empty means
	// SocketPath.
	Upstream string
	// Binary is the proxy executable; empty means BuildBinary(t, "proxy").
	Binary string
	// Args are extra command-line arguments, after the fixed flags.
	Args []string
	// Env is added to the test process's environment.
	Env []string
	// MaxOpenFiles, when set, is the proxy process's descriptor limit.
	MaxOpenFiles uint64
}

// Proxy is a proxy binary running as a subprocess of the test.
type Proxy struct {
	// DockerHost is the proxy's listen address, tcp://127.0.0.1:<port>, the
	// value a Docker client takes as DOCKER_HOST.
	DockerHost string
	// MetricsURL is http://127.0.0.1:<port>/metrics on the metrics listener.
	MetricsURL string

	cmd    *exec.Cmd
	stderr lockedBuffer
	stdout lockedBuffer
	done   chan struct{}
	err    error // exit status, valid once done is closed

	mu         sync.Mutex
	stopCalled bool
	stopErr    error
}

// StartProxy runs the proxy with
//
//	-policy FILE -listen tcp://127.0.0.1:<free port> -upstream unix://SOCKET
//	-metrics-listen tcp://127.0.0.1:<free port>
//
// waits until the listen port accepts connections, and stops it with
// SIGTERM on cleanup. The test fails if the proxy exits before it listens,
// exits during the test, or does not exit with status 0 on SIGTERM. Its
// stderr is logged when the test fails.
func StartProxy(t testing.TB, opts ProxyOptions) *Proxy {
	t.Helper()
	if opts.Binary == "" {
		opts.Binary = BuildBinary(t, "proxy")
	}
	if opts.Policy == "" {
		opts.Policy = filepath.Join(ModuleRoot(t), "policy.yaml")
	}
	upstream := opts.Upstream
	if upstream == "" {
		upstream = SocketPath
	}
	if !strings.Contains(upstream, "://") {
		upstream = "unix://" + upstream
	}
	listen, metrics := freePort(t), freePort(t)
	args := append([]string{
		"-policy", opts.Policy,
		"-listen", "tcp://" + listen,
		"-upstream", upstream,
		"-metrics-listen", "tcp://" + metrics,
	}, opts.Args...)

	p := &Proxy{
		DockerHost: "tcp://" + listen,
		MetricsURL: "http://" + metrics + "/metrics",
		done:       make(chan struct{}),
	}
	p.cmd = exec.Command(opts.Binary, args...)
	p.cmd.Env = append(os.Environ(), opts.Env...)
	p.cmd.Stderr = &p.stderr
	p.cmd.Stdout = &p.stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting proxy %s: %v", opts.Binary, err)
	}
	if n := opts.MaxOpenFiles; n > 0 {
		lim := unix.Rlimit{Cur: n, Max: n}
		if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
			p.cmd.Process.Kill()
			t.Fatalf("limiting the proxy's descriptors: %v", err)
		}
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.cleanup(t) })

	if err := p.waitListening(listen, 10*time.Second); err != nil {
		// Reported here; the cleanup only has to make sure it is gone.
		p.Stop()
		t.Fatalf("proxy %s: %v\nstderr:\n%s", strings.Join(args, " "), err, p.Stderr())
	}
	return p
}

func (p *Proxy) waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before listening: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v", addr, timeout)
		}
	}
}

func (p *Proxy) cleanup(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	called := p.stopCalled
	p.mu.Unlock()
	if !called {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping proxy: %v\nstderr:\n%s", err, p.Stderr())
			return
		}
	}
	if t.Failed() {
		t.Logf("proxy stderr:\n%s", p.Stderr())
		if out := p.stdout.String(); out != "" {
			t.Logf("proxy stdout:\n%s", out)
		}
	}
}

// Stop sends SIGTERM and waits up to ten seconds for the proxy to exit,
// then kills it. It returns an error unless the proxy exited with status 0
// after the SIGTERM. Later calls return the first call's result.
func (p *Proxy) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopCalled {
		p.stopCalled = true
		p.stopErr = p.stop()
	}
	return p.stopErr
}

func (p *Proxy) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("had already exited: %v", p.err)
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("exit after SIGTERM: %w", p.err)
		}
		return nil
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("no exit within 10s of SIGTERM; killed")
	}
}

// Signal sends sig to the proxy process.
func (p *Proxy) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// PID returns the proxy's process ID, for reading /proc/<pid>.
func (p *Proxy) PID() int {
	return p.cmd.Process.Pid
}

// Client returns a Docker client for the proxy (DockerHost, API version
// negotiation), closed on cleanup.
func (p *Proxy) Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost(p.DockerHost),
		client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("creating Docker client for %s: %v", p.DockerHost, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Stderr returns everything the proxy has written to stderr so far.
func (p *Proxy) Stderr() string {
	return p.stderr.String()
}

// LogLines returns every stderr line that is a JSON object, decoded.
func (p *Proxy) LogLines() []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Stderr()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// AuditLines returns the JSON stderr lines that record a decision (those
// with a "decision" key), one per request the proxy decided on.
func (p *Proxy) AuditLines() []map[string]any {
	var audit []map[string]any
	for _, m := range p.LogLines() {
		if _, ok := m["decision"]; ok {
			audit = append(audit, m)
		}
	}
	return audit
}

// WaitAuditLines waits up to five seconds until at least n audit lines are
// written (the log line may trail the response) and returns them all.
func (p *Proxy) WaitAuditLines(t testing.TB, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := p.AuditLines()
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy audit lines: got %d, want at least %d\nstderr:\n%s",
				len(lines), n, p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns 127.0.0.1:<port> for a port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort returns 127.0.0.1:<port> for a TCP port that was free a moment
// ago, for servers a test starts itself.
func FreePort(t testing.TB) string {
	t.Helper()
	return freePort(t)
}

// lockedBuffer is a bytes.Buffer safe for one writer and many readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
