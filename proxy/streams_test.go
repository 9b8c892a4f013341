package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// TestStreamDisconnects has clients leave streams in the middle: exec
// output, a followed log that keeps coming, a followed log that has gone
// quiet, and a container wait. Each time the proxy must close the daemon's
// side too; after all of them (200, or 1,000 with make soak) its open
// descriptors and goroutines are back to what they were before.
func TestStreamDisconnects(t *testing.T) {
	cli := dockertest.Client(t)
	image := standinImage(t, cli)
	sleeper := streamContainer(t, cli, image, "sockpin-stream-sleep-"+dockertest.RunID(), "sleep")
	// A log of 64 MiB that a follower reads only the start of.
	chatty := streamContainer(t, cli, image, "sockpin-stream-emit-"+dockertest.RunID(),
		"emit", fmt.Sprint(64<<20))
	dockertest.WaitContainer(t, cli, chatty, 30*time.Second,
		func(c container.InspectResponse) bool { return c.State != nil && !c.State.Running })
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{Policy: streamPolicy(t)})
	pid := px.PID()
	api := &http.Client{Timeout: 10 * time.Second}
	// Each reading of the counts uses a connection of its own, closed after,
	// so that no kept-alive connection of the test is counted some times
	// and not others.
	metrics := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	kinds := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"exec-output", func(t *testing.T) error {
			return leaveExec(t, px, api, sleeper)
		}},
		{"followed-log", func(t *testing.T) error {
			return leaveStream(t, px, "GET /containers/"+chatty+
				"/logs?follow=1&stdout=1&stderr=1 HTTP/1.1", 64<<10)
		}},
		{"followed-log-quiet", func(t *testing.T) error {
			return leaveStream(t, px, "GET /containers/"+sleeper+
				"/logs?follow=1&stdout=1&stderr=1 HTTP/1.1", 1)
		}},
		{"container-wait", func(t *testing.T) error {
			return leaveStream(t, px, "POST /containers/"+sleeper+"/wait HTTP/1.1", 0)
		}},
	}

	// One of each first, so that what a first use starts once (pooled
	// connections, cached labels) is in the baseline.
	for _, k := range kinds {
		if err := k.run(t); err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
	}
	api.CloseIdleConnections()
	waitSettled(t, px, metrics, pid, -1, -1)
	// An idle proxy's counts still move by one or two (the runtime runs
	// finalizers of closed files in a goroutine of its own, pooled daemon
	// connections close when idle): the baseline is the top of what two
	// seconds of readings show.
	baseFDs, baseG := 0, 0
	for range 10 {
		baseFDs, baseG = max(baseFDs, procFDs(t, pid)), max(baseG, goroutines(t, metrics, px))
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("baseline: %d descriptors, %d goroutines", baseFDs, baseG)

	n := 200
	if dockertest.Soak() {
		n = 1000
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		k := kinds[i%len(kinds)]
		if err := k.run(t); err != nil {
			t.Fatalf("disconnect %d (%s): %v", i, k.name, err)
		}
	}
	t.Logf("%d disconnects in %v", n, time.Since(start).Round(time.Millisecond))

	// Fewer is fine: the baseline may include a pooled daemon connection that was since
	// closed.
	api.CloseIdleConnections()
	fds, g := waitSettled(t, px, metrics, pid, baseFDs, baseG)
	if fds > baseFDs || g > baseG {
		t.Errorf("after %d disconnects: got %d descriptors and %d goroutines, want at most "+
			"the baseline %d and %d", n, fds, g, baseFDs, baseG)
	} else {
		t.Logf("after %d disconnects: %d descriptors, %d goroutines", n, fds, g)
	}
	if v := scrape(t, metrics, px)["sockpin_hijacked_connections"]; v != 0 {
		t.Errorf("sockpin_hijacked_connections: got %v, want 0", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if top, err := cli.ContainerTop(ctx, sleeper, nil); err == nil {
		t.Logf("processes left in the exec container: %d", len(top.Processes))
	}
}

// waitSettled waits up to ten seconds for the proxy's descriptors and
// goroutines to reach the wanted counts (or to stop changing, for -1) and
// returns the last counts.
func waitSettled(t *testing.T, px *dockertest.Proxy, metrics *http.Client, pid, wantFDs,
	wantG int,
) (int, int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	lastFDs, lastG := -2, -2
	for {
		fds, g := procFDs(t, pid), goroutines(t, metrics, px)
		if wantFDs < 0 && fds == lastFDs && g == lastG ||
			wantFDs >= 0 && fds <= wantFDs && g <= wantG ||
			time.Now().After(deadline) {
			return fds, g
		}
		lastFDs, lastG = fds, g
		time.Sleep(200 * time.Millisecond)
	}
}

func goroutines(t *testing.T, c *http.Client, px *dockertest.Proxy) int {
	t.Helper()
	return int(scrape(t, c, px)["go_goroutines"])
}

// leaveExec creates an exec that writes 1 GB, starts it the way the docker
// CLI does (upgraded connection), reads 64 KiB of output and hangs up.
func leaveExec(t *testing.T, px *dockertest.Proxy, api *http.Client, container string) error {
	t.Helper()
	a := call(api, "POST", baseURL(px)+"/containers/"+container+"/exec", "application/json",
		`{"AttachStdout":true,"AttachStderr":true,"Cmd":["/app","emit","1000000000"]}`)
	var created struct{ ID string }
	if a.err != nil || a.status != http.StatusCreated ||
		json.Unmarshal([]byte(a.body), &created) != nil {
		return fmt.Errorf("exec create: got %v, want 201", a)
	}
	c := rawConn(t, px)
	defer c.Close()
	body := `{"Detach":false,"Tty":false}`
	fmt.Fprintf(c, "POST /exec/%s/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"+
		"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		created.ID, len(body), body)
	br := bufio.NewReader(c)
	resp, err := readHead(c, br, 10*time.Second)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("exec start: got %v %v, want 101", resp, err)
	}
	if _, err := io.ReadFull(br, make([]byte, 64<<10)); err != nil {
		return fmt.Errorf("reading exec output: %v", err)
	}
	return nil
}

// leaveStream sends requestLine, reads the answer's head and want bytes of
// its body (none: the head is not waited for, as a wait answers only at
// the end), then hangs up.
func leaveStream(t *testing.T, px *dockertest.Proxy, requestLine string, want int) error {
	t.Helper()
	c := rawConn(t, px)
	defer c.Close()
	extra := ""
	if strings.HasPrefix(requestLine, "POST ") {
		extra = "Content-Length: 0\r\n"
	}
	fmt.Fprintf(c, "%s\r\nHost: docker\r\n%s\r\n", requestLine, extra)
	if want == 0 {
		// Give the proxy the time to pass the request on before leaving.
		time.Sleep(20 * time.Millisecond)
		return nil
	}
	br := bufio.NewReader(c)
	resp, err := readHead(c, br, 10*time.Second)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: got %v %v, want 200", requestLine, resp, err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, want)); err != nil {
		return fmt.Errorf("%s: reading the stream: %v", requestLine, err)
	}
	return nil
}
