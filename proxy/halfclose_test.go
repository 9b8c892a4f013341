package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestExecHalfCloseKeepsOutput is the docker CLI's and the manager's way of running an
// exec without standard input: they close their sending side right after the 101, then
// read the output until the daemon ends the stream. The half-close must reach the daemon
// as a half-close, and the output that comes after it must reach the client.
func TestExecHalfCloseKeepsOutput(t *testing.T) {
	daemon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/exec/"+execID+"/json"):
			fmt.Fprintf(w, `{"ID":%q,"ContainerID":%q,"Running":true}`, execID, helperID)
		case strings.HasSuffix(r.URL.Path, "/containers/"+helperID+"/json"):
			io.WriteString(w, fakeContainers["launchdb-pgbouncer"])
		case strings.HasSuffix(r.URL.Path, "/exec/"+execID+"/start"):
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 101 UPGRADED\r\n" +
				"Content-Type: application/vnd.docker.raw-stream\r\n" +
				"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
			buf.Flush()
			// The client's half-close arrives as the end of its input.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, buf); err != nil {
				buf.WriteString("no half-close seen: " + err.Error())
			}
			time.Sleep(100 * time.Millisecond)
			buf.WriteString("output after the half-close\n")
			buf.Flush()
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer daemon.Close()
	conn, br, resp := startExec(t, newTestHandler(t, &fakeDaemon{srv: daemon}, nil), execID)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v, want 101", resp)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "output after the half-close\n" {
		t.Errorf("got stream %q, want the output sent after the half-close", rest)
	}
}
