package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/launchdb/sockpin/filter"
)

func TestZZProfile(t *testing.T) {
	p, _ := filter.Load("../policy.yaml")
	up := NewUpstream(Address{Network: "unix", Addr: "/var/run/docker.sock"}, time.Second)
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := New(p, up, log, nil, Options{})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	end := time.Now().Add(5 * time.Second)
	n := 0
	var mu sync.Mutex
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				resp, err := c.Get("http://" + l.Addr().String() + "/_ping")
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d req/s", n/5)
	_ = context.Background()
}
