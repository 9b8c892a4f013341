package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// Limits the hostile-client tests run the proxy with: short, so that each
// cut-off is seen within the test, and each one a documented flag.
const (
	hostileHeaderTimeout  = time.Second
	hostileBodyTimeout    = time.Second
	hostileRequestTimeout = 2 * time.Second
	hostileIdleTimeout    = time.Second
	hostileMaxHeader      = 8 << 10
	hostileMaxBody        = 64 << 10
)

// slack is how much later than its limit a cut-off may be seen: the limit
// is checked by the proxy, the end is seen by the test on a busy machine.
const slack = 2 * time.Second

func startHostileProxy(t *testing.T) *dockertest.Proxy {
	t.Helper()
	dockertest.Client(t)
	return dockertest.StartProxy(t, dockertest.ProxyOptions{Args: []string{
		"-read-header-timeout", hostileHeaderTimeout.String(),
		"-body-timeout", hostileBodyTimeout.String(),
		"-request-timeout", hostileRequestTimeout.String(),
		"-idle-timeout", hostileIdleTimeout.String(),
		"-max-header-bytes", fmt.Sprint(hostileMaxHeader),
		"-max-body-bytes", fmt.Sprint(hostileMaxBody),
	}})
}

// wantCutAfter checks that a connection ended no sooner than limit allows
// (it was the limit that ended it, not an error) and not much later.
func wantCutAfter(t *testing.T, what string, took, limit time.Duration) {
	t.Helper()
	if took < limit-100*time.Millisecond || took > limit+slack {
		t.Errorf("%s: cut after %v, want after about %v", what, took.Round(time.Millisecond),
			limit)
	}
}

// TestHostileClients runs one hostile client at a time against a proxy
// with short limits and checks that the limit meant for it cuts it off,
// with the status Docker's clients understand, while a legitimate request
// made meanwhile is answered at once.
func TestHostileClients(t *testing.T) {
	px := startHostileProxy(t)

	t.Run("slow-headers", func(t *testing.T) {
		c := rawConn(t, px)
		start := time.Now()
		stop := make(chan struct{})
		go func() {
			// One header byte every 100 ms: never done within the limit.
			head := "GET /_ping HTTP/1.1\r\nHost: docker\r\nX-Slow: " + strings.Repeat("a", 100)
			for i := 0; i < len(head); i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{head[i]}); err != nil {
					return
				}
			}
		}()
		defer close(stop)
		time.Sleep(300 * time.Millisecond)
		wantPrompt(t, px, time.Second)
		resp, err := readHead(c, bufio.NewReader(c), hostileHeaderTimeout+slack)
		took := time.Since(start)
		if err != nil || resp.StatusCode/100 != 4 || !resp.Close {
			t.Fatalf("got %v %v, want a 4xx answer with Connection: close", resp, err)
		}
		wantCutAfter(t, "slow headers", took, hostileHeaderTimeout)
	})

	t.Run("slow-body", func(t *testing.T) {
		c := rawConn(t, px)
		body := `{"Image":"launchdb/postgrest:v1"}`
		start := time.Now()
		fmt.Fprintf(c, "POST /containers/create?name=postgrest-proj_0123456789abcdef HTTP/1.1\r\n"+
			"Host: docker\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			len(body), body[:5])
		stop := make(chan struct{})
		go func() {
			for i := 5; i < len(body); i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
			}
		}()
		defer close(stop)
		time.Sleep(300 * time.Millisecond)
		wantPrompt(t, px, time.Second)
		br := bufio.NewReader(c)
		resp, err := readHead(c, br, hostileBodyTimeout+slack)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("got %v, want an answer", err)
		}
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest ||
			!strings.HasPrefix(dockerMessage(string(data)), "sockpin: ") {
			t.Fatalf("got %d %s, want 400 in Docker's error shape", resp.StatusCode, data)
		}
		wantCutAfter(t, "slow body", took, hostileBodyTimeout)
		if _, _, err := waitClosed(c, slack); err != nil {
			t.Errorf("connection after the refusal: %v, want it closed", err)
		}
	})

	t.Run("never-reads-the-answer", func(t *testing.T) {
		c := rawConn(t, px)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		// Many requests in a row, and not one answer read: the answers fill
		// the socket buffers and the proxy's writes stall.
		const n = 4000
		var reqs strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&reqs, "GET /version?Req=nr%d HTTP/1.1\r\nHost: docker\r\n\r\n", i)
		}
		go func() {
			_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			_, _ = io.WriteString(c, reqs.String())
		}()
		time.Sleep(500 * time.Millisecond)
		wantPrompt(t, px, time.Second)
		// Only after the request timeout has passed does the client start
		// reading: it gets what was in flight, then the end of the
		// connection, long before it would have all n answers.
		time.Sleep(hostileRequestTimeout + slack)
		br := bufio.NewReader(c)
		answers := 0
		for {
			resp, err := readHead(c, br, slack)
			if err != nil {
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers++
		}
		if answers == 0 || answers >= n {
			t.Errorf("answers before the proxy cut the connection: got %d, want some, fewer "+
				"than %d", answers, n)
		}
		t.Logf("%d of %d answers were in flight when the stalled connection was cut", answers,
			n)
	})

	t.Run("idle-connections", func(t *testing.T) {
		// 1,000 connections: half never send a request (header timeout),
		// half send one and then stay idle (idle timeout).
		const n = 1000
		conns := make([]net.Conn, n)
		for i := range conns {
			c, err := net.DialTimeout("tcp", hostPort(px), 5*time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			defer c.Close()
			conns[i] = c
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				br := bufio.NewReader(c)
				limit := hostileHeaderTimeout
				if i%2 == 1 {
					limit = hostileIdleTimeout
					io.WriteString(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
					resp, err := readHead(c, br, 10*time.Second)
					if err != nil || resp.StatusCode != http.StatusOK {
						errs <- fmt.Sprintf("connection %d: first request: %v %v", i, resp, err)
						return
					}
					io.Copy(io.Discard, resp.Body)
				}
				_ = c.SetReadDeadline(time.Now().Add(limit + 3*slack))
				if n, err := br.Read(make([]byte, 1)); err == nil || n > 0 {
					errs <- fmt.Sprintf("connection %d: got data, want the proxy to close it", i)
				} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
					errs <- fmt.Sprintf("connection %d: still open after %v", i,
						time.Since(start).Round(time.Millisecond))
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		wantPrompt(t, px, time.Second)
		wg.Wait()
		close(errs)
		bad := 0
		for e := range errs {
			if bad++; bad <= 10 {
				t.Error(e)
			}
		}
		if bad > 10 {
			t.Errorf("... and %d more", bad-10)
		}
		t.Logf("%d idle connections closed by the proxy within %v", n,
			time.Since(start).Round(time.Millisecond))
		wantPrompt(t, px, time.Second)
	})

	t.Run("oversized-headers-431", func(t *testing.T) {
		c := rawConn(t, px)
		go func() {
			fmt.Fprintf(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n")
			for i := 0; i < 64; i++ {
				_, err := fmt.Fprintf(c, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 1000))
				if err != nil {
					return
				}
			}
			io.WriteString(c, "\r\n")
		}()
		wantPrompt(t, px, time.Second)
		resp, err := readHead(c, bufio.NewReader(c), 5*time.Second)
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %v %v, want 431", resp, err)
		}
		data, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(dockerMessage(string(data)), "sockpin: ") {
			t.Errorf("body %q is not Docker's error shape", data)
		}
	})

	for _, chunked := range []bool{false, true} {
		name := "oversized-body-413"
		if chunked {
			name += "-chunked"
		}
		t.Run(name, func(t *testing.T) {
			c := rawConn(t, px)
			body := `{"Image":"launchdb/postgrest:v1","Labels":{"x":"` +
				strings.Repeat("x", 4*hostileMaxBody) + `"}}`
			go func() {
				head := "POST /containers/create?name=postgrest-proj_0123456789abcdef " +
					"HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
				if chunked {
					fmt.Fprintf(c, "%sTransfer-Encoding: chunked\r\n\r\n", head)
					for i := 0; i < len(body); i += 4096 {
						part := body[i:min(i+4096, len(body))]
						if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(part), part); err != nil {
							return
						}
					}
					io.WriteString(c, "0\r\n\r\n")
					return
				}
				fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, len(body), body)
			}()
			wantPrompt(t, px, time.Second)
			resp, err := readHead(c, bufio.NewReader(c), 5*time.Second)
			if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("got %v %v, want 413", resp, err)
			}
			data, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(dockerMessage(string(data)), "sockpin: ") {
				t.Errorf("body %q is not Docker's error shape", data)
			}
		})
	}

	t.Run("every-refusal-audited", func(t *testing.T) {
		// Audit lines are written in batches: wait for the last ones.
		var missing []string
		for deadline := time.Now().Add(5 * time.Second); ; {
			statuses := map[float64]bool{}
			for _, l := range px.AuditLines() {
				if l["decision"] == "deny" {
					statuses[l["status"].(float64)] = true
				}
			}
			missing = nil
			for _, status := range []float64{400, 413, 431} {
				if !statuses[status] {
					missing = append(missing, fmt.Sprint(status))
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(missing) > 0 {
			t.Errorf("no audit line of a refusal with status %s", strings.Join(missing, ", "))
		}
	})
}

// TestDescriptorsRunOut floods a proxy whose descriptor limit is low with
// connections, on the API and the metrics listener, until accepting fails
// for want of descriptors: the proxy keeps running, says so in its log, and
// serves again once the flood lets go.
func TestDescriptorsRunOut(t *testing.T) {
	dockertest.Client(t)
	const limit = 64
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{MaxOpenFiles: limit})
	metricsAddr := strings.TrimSuffix(strings.TrimPrefix(px.MetricsURL, "http://"), "/metrics")
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for i := 0; i < 2*limit; i++ {
		for _, addr := range []string{strings.TrimPrefix(px.DockerHost, "tcp://"), metricsAddr} {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			flood = append(flood, c)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(px.Stderr(), "accepting a connection failed; retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections held, yet no failed accept logged; descriptors: %d",
				len(flood), procFDs(t, px.PID()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	// The backlog of connections the test closed drains first.
	deadline = time.Now().Add(10 * time.Second)
	for {
		a := call(quickClient(time.Second), "GET", baseURL(px)+"/_ping", "", "")
		if a.err == nil && a.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the flood: GET /_ping got %v, want 200", a)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := quickClient(time.Second).Get(strings.Replace(px.MetricsURL, "/metrics", "/healthz", 1))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("after the flood: /healthz got %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
}
