package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testMasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func TestRunHelpListsEnvironment(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-help"}, func(string) string { return "" }, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) || errOut.Len() != 0 {
		t.Fatalf("error: got %v and stderr %q, want flag.ErrHelp and the help on stdout", err, errOut.String())
	}
	for _, want := range []string{"PORT", "9000", "INTERNAL_API_KEY", "(required)", "DOCKER_HOST",
		"tcp://docker-socket-proxy:2375", "SPAWN_READY_TIMEOUT", "20s", "SHUTDOWN_TIMEOUT", "30s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunFailsFastListingMissingVariables(t *testing.T) {
	err := run(context.Background(), nil, func(string) string { return "" }, io.Discard, io.Discard)
	want := "missing required environment variables: INTERNAL_API_KEY, PLATFORM_DB_DSN, LAUNCHDB_MASTER_KEY"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error: got %v, want it to contain %q", err, want)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's writes and the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunShutdownLetsInFlightSpawnFinish starts the manager against a database that
// accepts connections but never answers, sends a spawn (which waits for the 5 s connect
// timeout), cancels the context as SIGTERM would, and checks that the spawn still gets its
// answer and run returns cleanly.
func TestRunShutdownLetsInFlightSpawnFinish(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the database connect timeout")
	}
	silentDB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silentDB.Close()
	go func() {
		for {
			c, err := silentDB.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := freePort(t)
	env := map[string]string{
		"PORT":             strconv.Itoa(port),
		"INTERNAL_API_KEY": "k",
		"PLATFORM_DB_DSN": "postgres://ro:pw@" + silentDB.Addr().String() +
			"/platform?sslmode=disable",
		"LAUNCHDB_MASTER_KEY":  testMasterKey,
		"DOCKER_HOST":          "unix://" + t.TempDir() + "/no-docker.sock",
		"POSTGREST_CONFIG_DIR": t.TempDir(),
		"SHUTDOWN_TIMEOUT":     "20s",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &logs, &logs) }()

	base := "http://127.0.0.1:" + env["PORT"]
	waitListening(t, base+"/health")
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("health with database and Docker down: got %d, want 503", resp.StatusCode)
	}
	// Node's server refused a header section over 16 KB; so does this one.
	big, _ := http.NewRequest("GET", base+"/health", nil)
	big.Header.Set("X-Padding", strings.Repeat("a", 24<<10))
	if resp, err := http.DefaultClient.Do(big); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("24 KB header: got %d, want 431", resp.StatusCode)
		}
	}

	type result struct {
		status int
		body   string
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/internal/postgrest/spawn",
			strings.NewReader(`{"projectId":"proj_0123456789abcdef"}`))
		req.Header.Set("X-Internal-Key", "k")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- result{status: resp.StatusCode, body: string(b)}
	}()
	time.Sleep(500 * time.Millisecond) // the spawn is now waiting for the database
	cancel()

	select {
	case r := <-answered:
		if r.err != nil {
			t.Fatalf("in-flight spawn cut off: %v", r.err)
		}
		if r.status != 500 || !strings.Contains(r.body, `"error":"spawn_failed"`) ||
			!strings.Contains(r.body, "platform database unavailable") {
			t.Errorf("in-flight spawn: got %d %s, want 500 spawn_failed naming the database",
				r.status, r.body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("in-flight spawn got no answer")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: got %v, want nil after a graceful shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	marker := filepath.Join(env["POSTGREST_CONFIG_DIR"], ".manager-running")
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("running marker after a clean stop: %v, want it removed", err)
	}
	if strings.Contains(logs.String(), "pw@") || strings.Contains(logs.String(), testMasterKey) {
		t.Errorf("logs contain a secret:\n%s", logs.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("manager not listening: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
