package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// TestDaemonGoneAndBack takes the daemon away behind the proxy (a relay
// socket the test stops and starts again) and brings it back: while it is
// gone every request the policy allows gets a prompt 502 in Docker's error
// shape, refusals are still refused, /readyz says 503 and a stream in
// flight ends; once it is back the same proxy serves again, writes first.
func TestDaemonGoneAndBack(t *testing.T) {
	cli := dockertest.Client(t)
	relay := dockertest.StartRelay(t, "")
	image := standinImage(t, cli)
	managed, managedID := managedContainer(t, cli, image)
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{Upstream: relay.Path()})
	base := baseURL(px)
	readyz := metricsURL(px, "/readyz")
	c := &http.Client{Timeout: 10 * time.Second}

	requests := []struct {
		method, path, body string
		want               int // while the daemon is up
	}{
		{"GET", "/_ping", "", 200},
		{"GET", "/version", "", 200},
		{"GET", "/v1.41/containers/json?all=1", "", 200},
		{"GET", "/containers/" + managed + "/json", "", 200},
		// A write: the daemon answers 304, the container already runs.
		{"POST", "/containers/" + managedID + "/start", "", 304},
	}
	check := func(phase string, up bool) {
		t.Helper()
		for _, r := range requests {
			a := call(c, r.method, base+r.path, "application/json", r.body)
			switch {
			case up && (a.err != nil || a.status != r.want):
				t.Errorf("%s: %s %s: got %v, want %d", phase, r.method, r.path, a, r.want)
			case !up && (a.err != nil || a.status != http.StatusBadGateway ||
				!strings.HasPrefix(dockerMessage(a.body), "sockpin: ")):
				t.Errorf("%s: %s %s: got %v, want 502 in Docker's error shape", phase,
					r.method, r.path, a)
			case !up && a.took > 2*time.Second:
				t.Errorf("%s: %s %s: answered in %v, want a prompt 502", phase, r.method,
					r.path, a.took)
			}
		}
		a := call(c, "POST", base+"/containers/create", "application/json",
			`{"Image":"alpine","HostConfig":{"Privileged":true}}`)
		if a.status != http.StatusForbidden {
			t.Errorf("%s: privileged create: got %v, want 403 whether the daemon is up or not",
				phase, a)
		}
		wantReady := http.StatusOK
		if !up {
			wantReady = http.StatusServiceUnavailable
		}
		if a := call(c, "GET", readyz, "", ""); a.status != wantReady {
			t.Errorf("%s: /readyz: got %v, want %d", phase, a, wantReady)
		}
	}

	check("daemon-up", true)

	// A stream in flight when the daemon goes: a wait on the running
	// container, sent by hand so the test sees how it ends.
	wait := rawConn(t, px)
	fmt.Fprintf(wait, "POST /containers/%s/wait HTTP/1.1\r\nHost: docker\r\n"+
		"Content-Length: 0\r\n\r\n", managedID)
	waitForRequest(t, relay, "/containers/"+managedID+"/wait")
	// The daemon answers a wait's head at once; let it reach the proxy.
	time.Sleep(300 * time.Millisecond)

	relay.Stop()
	wantBrokenStream(t, wait)
	check("daemon-gone", false)
	check("daemon-still-gone", false)

	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	// The first request after the daemon is back is a write, which cannot be
	// retried safely: it must not land on a connection of the old daemon.
	if a := call(c, "POST", base+"/containers/"+managedID+"/start", "", ""); a.status != 304 {
		t.Errorf("first write after the daemon came back: got %v, want 304", a)
	}
	check("daemon-back", true)

	// A restart so quick that no request saw the daemon gone: the pooled
	// connections are dead, and a write must not be sent on one.
	relay.Stop()
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if a := call(c, "POST", base+"/containers/"+managedID+"/start", "", ""); a.status != 304 {
		t.Errorf("first write after a quick restart: got %v, want 304", a)
	}

	// Audit lines are written in batches: wait for those of the failed requests.
	want, failed := 2*len(requests), 0
	for deadline := time.Now().Add(5 * time.Second); failed < want &&
		time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		failed = 0
		for _, l := range px.AuditLines() {
			if l["status"] == float64(http.StatusBadGateway) {
				failed++
			}
		}
	}
	if failed < want {
		t.Errorf("audit lines of failed requests: got %d, want at least %d", failed, want)
	}
}

// waitForRequest waits until the relay has passed on a request whose
// target contains target.
func waitForRequest(t *testing.T, relay *dockertest.Relay, target string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range relay.Requests() {
			if strings.Contains(r.Target, target) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the daemon never got a request for %s", target)
}

// wantBrokenStream reads the answer of a stream whose daemon went away: a
// 502, or an answer cut off so that the client sees an error, never an
// answer that ends as if the stream had finished.
func wantBrokenStream(t *testing.T, c net.Conn) {
	t.Helper()
	br := bufio.NewReader(c)
	resp, err := readHead(c, br, 5*time.Second)
	switch {
	case err != nil:
		t.Logf("stream in flight: connection closed before an answer (%v)", err)
	case resp.StatusCode == http.StatusBadGateway:
		t.Logf("stream in flight: answered 502")
	default:
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("stream in flight when the daemon went: got %d %q ending cleanly, want "+
				"a 502 or a cut-off answer", resp.StatusCode, body)
		}
	}
	if _, _, err := waitClosed(c, 5*time.Second); err != nil && resp != nil &&
		resp.StatusCode != http.StatusBadGateway {
		t.Errorf("connection of the broken stream: %v, want it closed", err)
	}
}
