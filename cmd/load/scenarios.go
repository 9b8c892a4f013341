package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// result is one scenario's figures: per side, one value per round and
// every latency seen.
type result struct {
	name   string
	unit   string
	target float64 // the proxy/direct ratio to reach; 0 when none
	values map[string][]float64
	lats   map[string][]time.Duration
	// text replaces the ratio columns for scenarios that are not a
	// comparison (memory, refusals).
	text string
	met  *bool
}

func newResult(name, unit string, target float64) *result {
	return &result{name: name, unit: unit, target: target,
		values: map[string][]float64{}, lats: map[string][]time.Duration{}}
}

// measure runs every scenario, alternating the sides round by round.
func (b *bench) measure(ctx context.Context) ([]*result, error) {
	mgd := b.managed[0]
	scenarios := []struct {
		r   *result
		run func(context.Context, side) (float64, []time.Duration, error)
	}{
		{newResult(fmt.Sprintf("GET /_ping, %d clients", b.cfg.clients), "req/s", 0.60),
			b.rate(b.cfg.clients, func(ctx context.Context, s side) error {
				_, err := s.do(ctx, http.MethodGet, "/_ping", "", http.StatusOK)
				return err
			})},
		{newResult(fmt.Sprintf("GET /containers/{id}/json, %d clients", b.cfg.clients), "req/s", 0.55),
			b.rate(b.cfg.clients, func(ctx context.Context, s side) error {
				_, err := s.do(ctx, http.MethodGet, "/containers/"+mgd+"/json", "", http.StatusOK)
				return err
			})},
		{newResult(fmt.Sprintf("GET /containers/json (%d containers), 1 client", len(b.managed)), "req/s", 0.95),
			b.rate(1, func(ctx context.Context, s side) error {
				_, err := s.do(ctx, http.MethodGet, "/containers/json?all=1", "", http.StatusOK)
				return err
			})},
		{newResult("create+start+stop+remove, pinned container", "cycles/s", 0.95), b.cycle},
		{newResult(fmt.Sprintf("exec output stream, %d MiB", b.cfg.execBytes>>20), "MB/s", 0.95), b.execStream},
		{newResult(fmt.Sprintf("logs stream, %d MiB", b.cfg.logBytes>>20), "MB/s", 0.95), b.logStream},
	}
	var out []*result
	for _, sc := range scenarios {
		if !b.cfg.selected(sc.r.name) {
			continue
		}
		b.say("%s", sc.r.name)
		for round := 0; round < b.cfg.rounds; round++ {
			for i := range b.sides {
				// Rotate who goes first, so no side always runs on a
				// machine the previous one just warmed or tired.
				s := b.sides[(i+round)%len(b.sides)]
				v, lats, err := sc.run(ctx, s)
				if err != nil {
					return nil, fmt.Errorf("%s through %s: %w", sc.r.name, s.name, err)
				}
				sc.r.values[s.name] = append(sc.r.values[s.name], v)
				sc.r.lats[s.name] = append(sc.r.lats[s.name], lats...)
			}
		}
		out = append(out, sc.r)
	}
	if b.cfg.selected("memory RSS") {
		mem, err := b.memory(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, mem...)
	}
	if b.cfg.selected("refused") {
		refused, err := b.refusalCost(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, refused)
	}
	return out, nil
}

// rate runs op from n clients for one round and returns operations per
// second and their latencies.
func (b *bench) rate(n int, op func(context.Context, side) error) func(context.Context, side) (float64, []time.Duration, error) {
	return func(ctx context.Context, s side) (float64, []time.Duration, error) {
		var (
			mu    sync.Mutex
			lats  []time.Duration
			first error
			wg    sync.WaitGroup
		)
		start := time.Now()
		end := start.Add(b.cfg.duration)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for time.Now().Before(end) {
					t := time.Now()
					if err := op(ctx, s); err != nil {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return float64(len(lats)) / time.Since(start).Seconds(), lats, first
	}
}

// cycle creates, starts, stops and removes pinned containers one after
// the other, the way the manager does.
func (b *bench) cycle(ctx context.Context, s side) (float64, []time.Duration, error) {
	var lats []time.Duration
	start := time.Now()
	for i := 0; i < b.cfg.cycles; i++ {
		b.cycles++
		id := fmt.Sprintf("proj_%sc%07d", b.run, b.cycles)
		t := time.Now()
		body, err := s.do(ctx, http.MethodPost, "/containers/create?name=postgrest-"+id, createBody(id), http.StatusCreated)
		if err != nil {
			return 0, nil, err
		}
		var created struct {
			ID string `json:"Id"`
		}
		if err := json.Unmarshal(body, &created); err != nil {
			return 0, nil, err
		}
		steps := []struct {
			method, path string
			want         int
		}{
			{http.MethodPost, "/containers/" + created.ID + "/start", http.StatusNoContent},
			{http.MethodPost, "/containers/" + created.ID + "/stop?t=0", http.StatusNoContent},
			{http.MethodDelete, "/containers/" + created.ID + "?force=1", http.StatusNoContent},
		}
		for _, st := range steps {
			if _, err := s.do(ctx, st.method, st.path, "", st.want); err != nil {
				return 0, nil, err
			}
		}
		lats = append(lats, time.Since(t))
	}
	return float64(b.cfg.cycles) / time.Since(start).Seconds(), lats, nil
}

// createBody is the manager's create request for a project.
func createBody(id string) string {
	return fmt.Sprintf(`{"Image":%q,"Cmd":["/etc/postgrest/projects/%s.conf"],`+
		`"Labels":{"io.launchdb.role":"postgrest","io.launchdb.project":%q},`+
		`"Healthcheck":{"Test":["CMD","curl","-f","http://localhost:3000/"],"Interval":30000000000,`+
		`"Timeout":10000000000,"Retries":3,"StartPeriod":30000000000},`+
		`"HostConfig":{"NetworkMode":%q,"RestartPolicy":{"Name":"unless-stopped"},`+
		`"Binds":["%s:/etc/postgrest/projects:ro"],"SecurityOpt":["no-new-privileges"],"PidsLimit":512}}`,
		pinned, id, id, tenantNet, configVol)
}

// execStream runs /app emit N in the bench container and reads its output
// over the switched connection, as docker exec does.
func (b *bench) execStream(ctx context.Context, s side) (float64, []time.Duration, error) {
	body := fmt.Sprintf(`{"AttachStdout":true,"AttachStderr":true,"Cmd":["/app","emit","%d"]}`, b.cfg.execBytes)
	out, err := s.do(ctx, http.MethodPost, "/containers/"+benchName+"/exec", body, http.StatusCreated)
	if err != nil {
		return 0, nil, err
	}
	var ex struct {
		ID string `json:"Id"`
	}
	if err := json.Unmarshal(out, &ex); err != nil {
		return 0, nil, err
	}
	conn, err := s.dial()
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	start := time.Now()
	startBody := `{"Detach":false,"Tty":false}`
	fmt.Fprintf(conn, "POST /exec/%s/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", ex.ID, len(startBody), startBody)
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return 0, nil, fmt.Errorf("exec start: status %d", resp.StatusCode)
	}
	n, err := io.Copy(io.Discard, br)
	elapsed := time.Since(start)
	if err != nil {
		return 0, nil, err
	}
	if n < b.cfg.execBytes {
		return 0, nil, fmt.Errorf("exec stream ended after %d bytes, want %d", n, b.cfg.execBytes)
	}
	return float64(n) / elapsed.Seconds() / 1e6, []time.Duration{elapsed}, nil
}

// logStream reads the log container's whole output.
func (b *bench) logStream(ctx context.Context, s side) (float64, []time.Duration, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/"+logsName+"/logs?stdout=1", nil)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("logs: status %d", resp.StatusCode)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	elapsed := time.Since(start)
	if err != nil {
		return 0, nil, err
	}
	if n < b.cfg.logBytes {
		return 0, nil, fmt.Errorf("log stream ended after %d bytes, want %d", n, b.cfg.logBytes)
	}
	return float64(n) / elapsed.Seconds() / 1e6, []time.Duration{elapsed}, nil
}

// memory reads the proxy's resident memory idle and with many idle client
// connections open.
func (b *bench) memory(ctx context.Context) ([]*result, error) {
	pid := b.proxy.Process.Pid
	idle := b.idleRSS
	proxy := b.sides[1]
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < b.cfg.idleConns; i++ {
		c, err := proxy.dial()
		if err != nil {
			return nil, fmt.Errorf("idle connection %d: %w", i, err)
		}
		conns = append(conns, c)
		fmt.Fprint(c, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
			return nil, fmt.Errorf("idle connection %d: %w", i, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	busy, err := rss(pid)
	if err != nil {
		return nil, err
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	okIdle, okBusy := mib(idle) <= 10, mib(busy) <= 60
	return []*result{
		{name: "proxy RSS, idle (started, one request served)", text: fmt.Sprintf("%.1f MiB (target <= 10 MiB)", mib(idle)), met: &okIdle},
		{name: fmt.Sprintf("proxy RSS, %d idle connections", b.cfg.idleConns),
			text: fmt.Sprintf("%.1f MiB (target <= 60 MiB)", mib(busy)), met: &okBusy},
	}, nil
}

// refusalCost compares a refused request (never sent to the daemon) with
// an allowed one, one client, through the proxy.
func (b *bench) refusalCost(ctx context.Context) (*result, error) {
	proxy := b.sides[1]
	n := 200 * b.cfg.rounds
	timeIt := func(path string, want int) ([]time.Duration, error) {
		lats := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			t := time.Now()
			if _, err := proxy.do(ctx, http.MethodGet, path, "", want); err != nil {
				return nil, err
			}
			lats = append(lats, time.Since(t))
		}
		return lats, nil
	}
	allowed, err := timeIt("/_ping", http.StatusOK)
	if err != nil {
		return nil, err
	}
	refused, err := timeIt("/info", http.StatusForbidden)
	if err != nil {
		return nil, err
	}
	a, r := percentile(allowed, 50), percentile(refused, 50)
	ok := r < a
	return &result{name: "refused GET /info vs allowed GET /_ping, p50", met: &ok,
		text: fmt.Sprintf("%s refused vs %s allowed", r.Round(time.Microsecond), a.Round(time.Microsecond))}, nil
}

func percentile(lats []time.Duration, p int) time.Duration {
	if len(lats) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), lats...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
