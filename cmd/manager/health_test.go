package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// listenManager serves h on 127.0.0.1 at a free port and returns the port.
func listenManager(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func TestHealth(t *testing.T) {
	healthy := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"status":"healthy","service":"postgrest-manager"}`)
	}
	unhealthy := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"unhealthy","checks":{"database":"unavailable"}}`)
	}
	up := listenManager(t, healthy)
	down := listenManager(t, unhealthy)
	closed := strconv.Itoa(freePort(t))

	tests := []struct {
		name    string
		port    string // PORT in the environment
		args    []string
		wantErr string // empty: success
	}{
		{name: "healthy-on-port-from-env", port: up},
		{name: "port-flag-overrides-env", port: down, args: []string{"-port", up}},
		{name: "unhealthy-fails-with-body", port: down,
			wantErr: `503 Service Unavailable: {"status":"unhealthy"`},
		{name: "nothing-listening-fails", port: closed, wantErr: "connection refused"},
		{name: "bad-port-env-fails", port: "nine", wantErr: `PORT: want a port number, got "nine"`},
		{name: "extra-arguments-fail", port: up, args: []string{"x"},
			wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			env := func(k string) string { return map[string]string{"PORT": tt.port}[k] }
			args := append([]string{"health"}, tt.args...)
			err := run(context.Background(), args, env, &out, &out)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want success", err)
			case tt.wantErr == "" && !strings.Contains(out.String(), `"healthy"`):
				t.Errorf("output: got %q, want the health body", out.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error: got %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
