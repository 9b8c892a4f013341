package manager

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitReadyFallsBackToInspectAddress runs the real probe: the container name does not
// resolve here, so readiness must come from the address inspect reports.
func TestWaitReadyFallsBackToInspectAddress(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	h := newHarness(t)
	h.svc.ready = h.svc.waitReady
	h.svc.probePort, _ = strconv.Atoi(port)
	h.svc.cfg.SpawnReadyTimeout = 2 * time.Second
	h.docker.ip = host
	h.seed(testID, "jwt", "pw")

	// Never ready: spawn fails after the budget and cleans up.
	start := time.Now()
	_, err := h.svc.Spawn(context.Background(), testID)
	if err == nil || !strings.Contains(err.Error(), "did not become ready within 2s") ||
		!strings.Contains(err.Error(), "503") {
		t.Fatalf("error: got %v, want not ready within 2s with the last 503", err)
	}
	if took := time.Since(start); took < 2*time.Second || took > 5*time.Second {
		t.Errorf("failed spawn took %v, want about the 2s budget", took)
	}
	if _, ok := h.docker.container(ContainerName(testID)); ok {
		t.Error("container left behind")
	}

	// Ready after a moment: spawn succeeds within a few polls.
	status.Store(http.StatusServiceUnavailable)
	go func() {
		time.Sleep(600 * time.Millisecond)
		status.Store(http.StatusOK)
	}()
	start = time.Now()
	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil || res.Status != StatusRunning {
		t.Fatalf("got %+v, %v; want running", res, err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("spawn took %v after the container became ready at 600ms, want prompt polling",
			took)
	}
}
