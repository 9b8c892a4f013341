package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// TestShutdown sends SIGTERM to a proxy that has an idle kept-alive
// connection, an ordinary request in flight (a container wait the test ends
// one second later) and an exec stream that never ends by itself. The
// proxy stops accepting at once, closes the idle connection, lets the wait
// finish with its answer, closes the exec stream when -shutdown-timeout
// has passed, and exits with status 0.
func TestShutdown(t *testing.T) {
	const shutdownTimeout = 3 * time.Second
	cli := dockertest.Client(t)
	image := standinImage(t, cli)
	waited := streamContainer(t, cli, image, "sockpin-shutdown-wait-"+dockertest.RunID(), "sleep")
	execIn := streamContainer(t, cli, image, "sockpin-shutdown-exec-"+dockertest.RunID(), "sleep")
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{Policy: streamPolicy(t),
		Args: []string{"-shutdown-timeout", shutdownTimeout.String()}})
	api := &http.Client{Timeout: 10 * time.Second}

	// An idle kept-alive connection.
	idle := rawConn(t, px)
	idleBR := bufio.NewReader(idle)
	io.WriteString(idle, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
	if resp, err := readHead(idle, idleBR, 5*time.Second); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request on the idle connection: %v %v", resp, err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}

	// An exec stream with no output and no end of its own.
	a := call(api, "POST", baseURL(px)+"/containers/"+execIn+"/exec", "application/json",
		`{"AttachStdout":true,"AttachStderr":true,"Cmd":["/app","sleep"]}`)
	var created struct{ ID string }
	if a.status != http.StatusCreated || json.Unmarshal([]byte(a.body), &created) != nil {
		t.Fatalf("exec create: got %v, want 201", a)
	}
	stream := rawConn(t, px)
	body := `{"Detach":false,"Tty":false}`
	fmt.Fprintf(stream, "POST /exec/%s/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"+
		"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		created.ID, len(body), body)
	streamBR := bufio.NewReader(stream)
	if resp, err := readHead(stream, streamBR, 10*time.Second); err != nil ||
		resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("exec start: got %v %v, want 101", resp, err)
	}

	// An ordinary request in flight: a wait, answered when the container
	// stops.
	waitDone := make(chan answer, 1)
	go func() {
		waitDone <- call(api, "POST", baseURL(px)+"/containers/"+waited+"/wait", "", "")
	}()
	time.Sleep(300 * time.Millisecond)

	stopped := make(chan error, 1)
	sigterm := time.Now()
	go func() { stopped <- px.Stop() }()

	// New connections are refused promptly.
	refused := false
	for time.Since(sigterm) < time.Second {
		c, err := net.DialTimeout("tcp", hostPort(px), time.Second)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if !refused {
		t.Error("new connections still accepted a second after SIGTERM")
	}
	if took, _, err := waitClosed(idle, time.Second); err != nil {
		t.Errorf("idle connection after SIGTERM: %v, want it closed", err)
	} else {
		t.Logf("idle connection closed %v after SIGTERM", took.Round(time.Millisecond))
	}

	// The in-flight wait gets its answer once the container stops.
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	grace := 0
	if err := cli.ContainerStop(ctx, waited, container.StopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	w := <-waitDone
	if w.err != nil || w.status != http.StatusOK || !strings.Contains(w.body, `"StatusCode"`) {
		t.Errorf("wait in flight at SIGTERM: got %v, want its 200 answer", w)
	}

	// The exec stream is cut at the shutdown deadline.
	took, _, err := waitClosed(stream, shutdownTimeout+slack)
	took = time.Since(sigterm)
	if err != nil {
		t.Errorf("exec stream: %v after SIGTERM, want it closed at the deadline", err)
	} else if took < shutdownTimeout-100*time.Millisecond || took > shutdownTimeout+slack {
		t.Errorf("exec stream closed %v after SIGTERM, want about %v", took.Round(time.Millisecond),
			shutdownTimeout)
	}

	if err := <-stopped; err != nil {
		t.Errorf("proxy exit: %v, want status 0", err)
	}
	exited := time.Since(sigterm)
	t.Logf("proxy exited %v after SIGTERM", exited.Round(time.Millisecond))

	// The wait's audit line was written before the exit.
	found := false
	for _, l := range px.AuditLines() {
		if l["op"] == "container.wait" && l["status"] == float64(200) {
			found = true
		}
	}
	if !found {
		t.Error("no audit line for the wait that finished during shutdown")
	}
}
