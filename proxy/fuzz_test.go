package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/launchdb/sockpin/filter"
)

// FuzzServeConn feeds arbitrary bytes, as a client would send them, to the proxy's own
// HTTP server with the real handler and policy in front of a small fake daemon. Whatever
// arrives, the server must not crash or hang, every answer it writes must be a well-formed
// HTTP response (refusals in Docker's error shape), and what reaches the daemon must be
// canonical requests the proxy wrote itself. Seeds are in testdata/fuzz/FuzzServeConn.
func FuzzServeConn(f *testing.F) {
	f.Add([]byte("GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"))
	f.Add([]byte("POST /containers/postgrest-proj_0123456789abcdef/stop?t=5 HTTP/1.1\r\n" +
		"Host: d\r\nContent-Length: 0\r\n\r\nGET /v1.41/version HTTP/1.1\r\nHost: d\r\n\r\n"))

	// Unix sockets on both sides: a connection per input over loopback TCP would leave
	// millions of TIME_WAIT sockets behind, and later tests' connections collide with them.
	dir, err := os.MkdirTemp("", "sockpin-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	daemon := &fuzzDaemon{}
	srv := httptest.NewUnstartedServer(daemon)
	if srv.Listener, err = net.Listen("unix", filepath.Join(dir, "daemon.sock")); err != nil {
		f.Fatal(err)
	}
	srv.Start()
	f.Cleanup(srv.Close)
	p, err := filter.Load("../policy.yaml")
	if err != nil {
		f.Fatal(err)
	}
	up := NewUpstream(Address{Network: "unix", Addr: filepath.Join(dir, "daemon.sock")},
		time.Second)
	h := New(p, up, nil, nil, Options{MaxBodyBytes: 64 << 10, BodyTimeout: time.Second,
		RequestTimeout: 2 * time.Second})
	s := &httpServer{handler: h, readHeaderTimeout: time.Second, idleTimeout: time.Second,
		maxHeaderBytes: 8 << 10, log: h.auditUnread}
	l, err := net.Listen("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		f.Fatal(err)
	}
	go s.serve(l)
	f.Cleanup(func() { s.shutdown(canceled()) })

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("unix", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			c.Write(in)
			// The whole request is sent: what is missing never comes.
			c.(*net.UnixConn).CloseWrite()
		}()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server neither answered nor closed within 10s; got %q", clipBytes(out))
		}
		checkAnswers(t, out, methods(in))
		for _, line := range daemon.take() {
			if reason := notCanonical(line); reason != "" {
				t.Fatalf("the daemon got %q: %s", line, reason)
			}
		}
	})
}

// methods returns the methods of the requests in, as far as they parse: an answer to HEAD
// has no body.
func methods(in []byte) []string {
	var out []string
	br := bufio.NewReader(bytes.NewReader(in))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		out = append(out, req.Method)
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return out
		}
	}
}

// checkAnswers parses what the server wrote as a sequence of HTTP responses, the i-th to
// a request with method methods[i] (GET when unknown).
func checkAnswers(t *testing.T, out []byte, methods []string) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(out))
	for i := 0; ; i++ {
		if _, err := br.Peek(1); err != nil {
			return
		}
		method := http.MethodGet
		if i < len(methods) {
			method = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("the server wrote something that is not an HTTP response (%v): %q", err,
				clipBytes(out))
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return // the rest is the raw stream
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil && err != io.ErrUnexpectedEOF {
			t.Fatalf("reading an answer's body: %v", err)
		}
		if resp.StatusCode >= 400 && method != http.MethodHead &&
			!bytes.Contains(body, []byte(`"message":"`)) {
			t.Fatalf("answer %d without Docker's error shape: %q", resp.StatusCode, body)
		}
		if err != nil || resp.Close {
			return // a stream cut off, or the last answer on the connection
		}
	}
}

// notCanonical says what is wrong with a request line the daemon got, or "".
func notCanonical(line string) string {
	method, target, ok := strings.Cut(line, " ")
	switch {
	case !ok || method != strings.ToUpper(method):
		return "malformed method"
	case !strings.HasPrefix(target, "/"):
		return "target not absolute"
	case strings.Contains(target, "//") || strings.Contains(target, "/../") ||
		strings.Contains(target, "/./") || strings.ContainsAny(target, "\\;\x00 \r\n"):
		return "target not canonical"
	}
	path, _, _ := strings.Cut(target, "?")
	if strings.Contains(path, "%") {
		return "percent-encoded path"
	}
	return ""
}

// fuzzDaemon answers like the daemon for the few containers fakeContainers holds, and
// records every request line.
type fuzzDaemon struct {
	mu   sync.Mutex
	seen []string
}

func (d *fuzzDaemon) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := d.seen
	d.seen = nil
	return seen
}

func (d *fuzzDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.seen = append(d.seen, r.Method+" "+r.RequestURI)
	d.mu.Unlock()
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1.") {
		path = path[strings.Index(path[1:], "/")+1:]
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case path == "/_ping":
		io.WriteString(w, "OK")
	case path == "/version":
		io.WriteString(w, `{"ApiVersion":"1.41"}`)
	case path == "/containers/json":
		fmt.Fprintf(w, `[{"Id":%q,"Labels":{"io.launchdb.role":"postgrest",`+
			`"io.launchdb.project":"proj_0123456789abcdef"}},{"Id":%q,"Labels":{}}]`,
			managedID, otherID)
	case len(parts) == 3 && parts[0] == "containers" && parts[2] == "json":
		for name, body := range fakeContainers {
			if parts[1] == name || strings.Contains(body, `"Id":"`+parts[1]+`"`) {
				io.WriteString(w, body)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"No such container"}`)
	case path == "/exec/"+execID+"/json":
		fmt.Fprintf(w, `{"ID":%q,"ContainerID":%q,"Running":false}`, execID, helperID)
	case path == "/exec/"+execID+"/start":
		upgrade(w, r)
	case strings.HasSuffix(path, "/exec"):
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"Id":%q}`, execID)
	case strings.HasSuffix(path, "/wait"):
		io.WriteString(w, `{"StatusCode":0}`)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func clipBytes(b []byte) []byte {
	if len(b) > 400 {
		return b[:400]
	}
	return b
}

// canceled returns a context that is already done, for a shutdown that closes at once.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
