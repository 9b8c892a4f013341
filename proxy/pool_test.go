package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWriteAfterDaemonClosedPooledConnection restarts the daemon right after a request
// left its connection in the pool: the next request, a write that cannot be sent twice,
// must go out on a new connection instead of failing on the dead one.
func TestWriteAfterDaemonClosedPooledConnection(t *testing.T) {
	daemon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer daemon.Close()
	up := NewUpstream(Address{Network: "tcp", Addr: strings.TrimPrefix(daemon.URL, "http://")},
		time.Second)
	post := func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := up.RoundTrip(ctx, &Request{Method: "POST", Target: "/containers/x/start"})
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := post(); err != nil || code != http.StatusNoContent {
		t.Fatalf("first write: got %d %v, want 204", code, err)
	}
	daemon.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if code, err := post(); err != nil || code != http.StatusNoContent {
		t.Errorf("write after the daemon closed the pooled connection: got %d %v, want 204",
			code, err)
	}
}
