package dockertest

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// fakeDaemon serves a few Engine-like endpoints on a unix socket: plain
// answers, an exec start that upgrades (101) or refuses (404), and an
// attach that answers with a raw stream without upgrading. Hijacked
// connections echo what they receive.
func fakeDaemon(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sockpin-fake-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "daemon.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	hijack := func(w http.ResponseWriter, r *http.Request, head string) {
		io.Copy(io.Discard, r.Body)
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString(head)
		rw.Flush()
		io.Copy(conn, rw.Reader)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hi")
	})
	mux.HandleFunc("GET /bye", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("POST /v1.41/exec/{id}/start", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "denied" {
			http.Error(w, `{"message":"no such exec"}`, http.StatusNotFound)
			return
		}
		hijack(w, r, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"+
			"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	})
	mux.HandleFunc("POST /containers/{id}/attach", func(w http.ResponseWriter, r *http.Request) {
		hijack(w, r, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

// step is one exchange on a raw connection: bytes to write, and what the
// answer must contain (a response status line and body, or echoed bytes).
type step struct {
	send     string
	response bool // read an HTTP response (else read len(want) raw bytes)
	method   string
	want     string
}

func TestRelayRecordsRequests(t *testing.T) {
	relay := StartRelay(t, fakeDaemon(t))
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	hello := step{send: "GET /hello HTTP/1.1\r\nHost: docker\r\n\r\n", response: true,
		want: "200 hi"}
	upgrade := "POST /v1.41/exec/abc/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n" +
		"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name: "keep-alive-requests",
			steps: []step{
				hello,
				{send: "POST /echo HTTP/1.1\r\nHost: docker\r\nContent-Length: 3\r\n\r\nabc",
					response: true, method: "POST", want: "200 abc"},
			},
			want: []string{"GET /hello", "POST /echo"},
		},
		{
			name: "chunked-body",
			steps: []step{
				{send: "POST /echo HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n" +
					"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", response: true, method: "POST",
					want: "200 abcde"},
				hello,
			},
			want: []string{"POST /echo", "GET /hello"},
		},
		{
			name: "head-answer-has-no-body",
			steps: []step{
				{send: "HEAD /hello HTTP/1.1\r\nHost: docker\r\n\r\n", response: true,
					method: "HEAD", want: "200 "},
				hello,
			},
			want: []string{"HEAD /hello", "GET /hello"},
		},
		{
			name: "upgrade-stops-parsing",
			steps: []step{
				{send: upgrade, response: true, method: "POST", want: "101 "},
				{send: smuggled, want: smuggled},
			},
			want: []string{"POST /v1.41/exec/abc/start"},
		},
		{
			name: "refused-upgrade-keeps-parsing",
			steps: []step{
				{send: strings.Replace(upgrade, "/abc/", "/denied/", 1), response: true,
					method: "POST", want: "404 "},
				hello,
			},
			want: []string{"POST /v1.41/exec/denied/start", "GET /hello"},
		},
		{
			name: "raw-stream-attach-stops-parsing",
			steps: []step{
				{send: "POST /containers/x/attach?stream=1 HTTP/1.1\r\nHost: docker\r\n" +
					"Content-Length: 0\r\n\r\n", response: true, method: "POST", want: "200 "},
				{send: smuggled, want: smuggled},
			},
			want: []string{"POST /containers/x/attach?stream=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			relay.Reset()
			conn, err := net.Dial("unix", relay.Path())
			if err != nil {
				t.Fatalf("dialing relay: %v", err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(conn)
			for i, s := range tt.steps {
				if _, err := io.WriteString(conn, s.send); err != nil {
					t.Fatalf("step %d: writing: %v", i, err)
				}
				if got := readAnswer(t, br, s); !strings.HasPrefix(got, s.want) {
					t.Fatalf("step %d answer: got %q, want prefix %q", i, got, s.want)
				}
			}
			conn.Close()
			if got := Targets(relay.Requests()); !slices.Equal(got, tt.want) {
				t.Errorf("recorded: got %q, want %q", got, tt.want)
			}
		})
	}
}

func readAnswer(t *testing.T, br *bufio.Reader, s step) string {
	t.Helper()
	if !s.response {
		buf := make([]byte, len(s.want))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatalf("reading raw echo: %v", err)
		}
		return string(buf)
	}
	method := s.method
	if method == "" {
		method = "GET"
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode == 200 &&
		strings.Contains(resp.Header.Get("Content-Type"), "raw-stream") {
		return resp.Status[:4]
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.Status[:4] + string(body)
}

func TestRelayRecordsBodyAndTime(t *testing.T) {
	relay := StartRelay(t, fakeDaemon(t))
	cli := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", relay.Path())
		},
	}}
	before := time.Now()
	resp, err := cli.Post("http://docker/echo", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatalf("POST /echo: %v", err)
	}
	resp.Body.Close()
	reqs := relay.Requests()
	if len(reqs) != 1 {
		t.Fatalf("recorded: got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if string(got.Body) != `{"a":1}` {
		t.Errorf("body: got %q, want %q", got.Body, `{"a":1}`)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type: got %q, want application/json", ct)
	}
	if got.Time.Before(before) || got.Time.After(time.Now()) {
		t.Errorf("time: got %v, want between %v and now", got.Time, before)
	}
	relay.Reset()
	if got := relay.Requests(); len(got) != 0 {
		t.Errorf("after Reset: got %d requests, want 0", len(got))
	}
}

func TestRelayPassesOnDaemonClose(t *testing.T) {
	relay := StartRelay(t, fakeDaemon(t))
	conn, err := net.Dial("unix", relay.Path())
	if err != nil {
		t.Fatalf("dialing relay: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /bye HTTP/1.1\r\nHost: docker\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	io.ReadAll(resp.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("read after the daemon closed: got %v, want EOF", err)
	}
}

func TestRelayStopAndStart(t *testing.T) {
	relay := StartRelay(t, fakeDaemon(t))
	get := func(conn net.Conn) error {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: d\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}

	open, err := net.Dial("unix", relay.Path())
	if err != nil {
		t.Fatalf("dialing relay: %v", err)
	}
	defer open.Close()
	if err := get(open); err != nil {
		t.Fatalf("GET before Stop: %v", err)
	}

	relay.Stop()
	if err := get(open); err == nil {
		t.Errorf("GET on a connection open across Stop: got success, want an error")
	}
	if _, err := net.Dial("unix", relay.Path()); err == nil {
		t.Errorf("dial after Stop: got success, want an error")
	}

	if err := relay.Start(); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	again, err := net.Dial("unix", relay.Path())
	if err != nil {
		t.Fatalf("dial after Start: %v", err)
	}
	defer again.Close()
	if err := get(again); err != nil {
		t.Errorf("GET after Start: got %v, want success", err)
	}
	if err := relay.Start(); err == nil {
		t.Errorf("Start while running: got success, want an error")
	}
}

func TestRelayInFrontOfTheDaemon(t *testing.T) {
	cli := Client(t)
	tag := standinForTest(t, cli)
	id := Container(t, cli, Spec{Name: testName("sleeper"), Image: tag,
		Entrypoint: []string{"/app", "sleep"}})

	relay := StartRelay(t, "")
	viaRelay := clientFor(t, relay.Path())
	relay.Reset()

	// An exec hijacks its connection: output and exit code must come back.
	res := Exec(t, viaRelay, id, "curl", "-f", "http://127.0.0.1:1/")
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, "connection refused") {
		t.Errorf("exec via relay: got exit %d, stderr %q; want 1 and connection refused",
			res.ExitCode, res.Stderr)
	}
	if _, err := viaRelay.ContainerList(context.Background(), container.ListOptions{}); err != nil {
		t.Errorf("container list via relay: %v", err)
	}

	version := viaRelay.ClientVersion()
	want := []string{
		"POST /v" + version + "/containers/" + id + "/exec",
		"POST /v" + version + "/exec/",
		"GET /v" + version + "/exec/",
		"GET /v" + version + "/containers/json",
	}
	// The client negotiates its API version with HEAD /_ping when it likes.
	got := slices.DeleteFunc(Targets(relay.Requests()), func(s string) bool {
		return strings.HasSuffix(s, "/_ping")
	})
	if len(got) != len(want) {
		t.Fatalf("recorded: got %q, want %d requests like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("request %d: got %q, want prefix %q", i, got[i], want[i])
		}
	}
}
