package dockertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The stand-in program runs here as a host process; the image tests run it
// inside containers.

const sampleConfig = `# PostgREST config for proj_0000000000000000
db-uri = "postgres://proj_0000000000000000_authenticator:pw@pgbouncer:6432/proj_0000000000000000"
jwt-secret = "sec\"ret"
`

// startStandin runs the stand-in with args and waits until its stderr
// contains ready. It returns the command and its stderr buffer.
func startStandin(t *testing.T, env []string, ready string, args ...string) (*exec.Cmd,
	*lockedBuffer,
) {
	t.Helper()
	var stderr lockedBuffer
	cmd := exec.Command(Standin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting standin: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), ready) {
		if time.Now().After(deadline) {
			t.Fatalf("standin %v: no %q on stderr within 5s; got %q", args, ready, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd, &stderr
}

// exitCode waits for cmd and returns its exit status, or -1 when a signal
// killed it.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("waiting for standin: %v", err)
		}
		return 0
	case <-time.After(5 * time.Second):
		t.Fatalf("standin did not exit within 5s")
		return 0
	}
}

func TestStandinServe(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ready := write("ready.conf", sampleConfig)
	never := write("never.conf", "jwt-secret = \"standin-never-ready-1\"\n")
	curl := filepath.Join(dir, "curl")
	if err := os.Symlink(Standin(t), curl); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(sampleConfig))

	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantCurl   int
		wantSHA    string
	}{
		{
			name: "serve-ready", args: []string{"serve", ready},
			wantStatus: 200, wantCurl: 0, wantSHA: hex.EncodeToString(sum[:]),
		},
		{name: "config-as-only-argument", args: []string{ready}, wantStatus: 200,
			wantSHA: hex.EncodeToString(sum[:])},
		{name: "never-ready-secret", args: []string{"serve", never}, wantStatus: 503, wantCurl: 1},
		{
			name: "missing-config", args: []string{"serve", filepath.Join(dir, "nope.conf")},
			wantStatus: 503, wantCurl: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := FreePort(t)
			cmd, _ := startStandin(t, []string{"STANDIN_ADDR=" + addr}, "serving", tt.args...)
			waitListening(t, addr)

			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("GET /: %v", err)
			}
			var body map[string]string
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("GET / status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantSHA != "" {
				if body["sha256"] != tt.wantSHA {
					t.Errorf("sha256: got %q, want %q", body["sha256"], tt.wantSHA)
				}
				if want := "proj_0000000000000000"; body["project"] != want {
					t.Errorf("project: got %q, want %q", body["project"], want)
				}
				if body["config"] != ready {
					t.Errorf("config: got %q, want %q", body["config"], ready)
				}
			}

			err = exec.Command(curl, "-f", "http://"+addr+"/").Run()
			if got := exitStatus(err); got != tt.wantCurl {
				t.Errorf("curl -f exit status: got %d, want %d", got, tt.wantCurl)
			}

			cmd.Process.Signal(syscall.SIGTERM)
			if got := exitCode(t, cmd); got != 0 {
				t.Errorf("exit status after SIGTERM: got %d, want 0", got)
			}
		})
	}
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStandinSignals(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "p.conf")
	os.WriteFile(conf, []byte(sampleConfig), 0o600)
	tests := []struct {
		name   string
		args   []string
		ready  string
		signal syscall.Signal
		want   int
	}{
		{name: "serve-exits-129-on-hup", args: []string{"serve", conf}, ready: "serving",
			signal: syscall.SIGHUP, want: 129},
		{name: "serve-exits-0-on-term", args: []string{"serve", conf}, ready: "serving",
			signal: syscall.SIGTERM, want: 0},
		{name: "sleep-exits-0-on-term", args: []string{"sleep"}, ready: "sleeping",
			signal: syscall.SIGTERM, want: 0},
		{name: "sleep-exits-0-on-int", args: []string{"sleep"}, ready: "sleeping",
			signal: syscall.SIGINT, want: 0},
		{name: "pgbouncer-exits-0-on-term", ready: "recording reloads",
			args:   []string{"pgbouncer", filepath.Join(t.TempDir(), "reloads")},
			signal: syscall.SIGTERM, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{"STANDIN_ADDR=" + FreePort(t)}
			cmd, _ := startStandin(t, env, tt.ready, tt.args...)
			cmd.Process.Signal(tt.signal)
			if got := exitCode(t, cmd); got != tt.want {
				t.Errorf("exit status: got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestStandinPgBouncerCountsHangups(t *testing.T) {
	reloads := filepath.Join(t.TempDir(), "reloads")
	cmd, stderr := startStandin(t, nil, "recording reloads", "pgbouncer", reloads)
	for want := 1; want <= 3; want++ {
		cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(5 * time.Second)
		for countLines(reloads) < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := countLines(reloads); got != want {
			t.Fatalf("reload lines after %d SIGHUPs: got %d, want %d", want, got, want)
		}
	}
	if got := strings.Count(stderr.String(), "reload recorded"); got != 3 {
		t.Errorf("logged reloads: got %d, want 3", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if got := exitCode(t, cmd); got != 0 {
		t.Errorf("exit status after SIGTERM: got %d, want 0", got)
	}
}

func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte("\n"))
}

func TestStandinEmit(t *testing.T) {
	tests := []struct {
		name string
		n    string
		want int
	}{
		{name: "zero", n: "0", want: 0},
		{name: "small", n: "10", want: 10},
		{name: "several-chunks", n: "200000", want: 200000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(Standin(t), "emit", tt.n).Output()
			if err != nil {
				t.Fatalf("emit %s: %v", tt.n, err)
			}
			if len(out) != tt.want {
				t.Errorf("bytes written: got %d, want %d", len(out), tt.want)
			}
		})
	}
}
