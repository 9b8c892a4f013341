package proxy_test

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/launchdb/sockpin/internal/dockertest"
)

// loadRequest is one kind of request the load test sends.
type loadRequest struct {
	name         string
	method, path string // path without the Req tag
	body         string
	op, decision string // what the audit line and the counter must say
	status       int
	allowed      bool
	query        bool // path already has a query
}

// TestLoad runs 200 clients for 5 s (60 s with make soak), each sending
// allowed and refused requests in turn as fast as the proxy answers. No
// allowed request may fail, every refused one must be refused, each request
// has exactly one audit line (found by a tag in its query) and is counted
// exactly once in sockpin_requests_total, and the proxy's memory stays
// within a fixed budget; the peak is reported.
func TestLoad(t *testing.T) {
	cli := dockertest.Client(t)
	image := standinImage(t, cli)
	managed, _ := managedContainer(t, cli, image)
	px := dockertest.StartProxy(t, dockertest.ProxyOptions{})
	pid := px.PID()

	duration := 5 * time.Second
	if dockertest.Soak() {
		duration = 60 * time.Second
	}
	const clients = 200
	// The memory budget is a guard against unbounded growth (a leak per
	// request or per connection), not a benchmark: the proxy idles at about
	// 10 MiB.
	const memoryBudget = 256 << 20

	kinds := []loadRequest{
		{name: "ping", method: "GET", path: "/_ping", op: "system.ping", decision: "allow",
			status: 200, allowed: true},
		{name: "version", method: "GET", path: "/v1.41/version", op: "system.version",
			decision: "allow", status: 200, allowed: true},
		{name: "list", method: "GET", path: "/containers/json?all=1", query: true,
			op: "container.list", decision: "allow", status: 200, allowed: true},
		{name: "inspect", method: "GET", path: "/containers/" + managed + "/json",
			op: "container.inspect", decision: "allow", status: 200, allowed: true},
		{name: "info", method: "GET", path: "/info", op: "system.info", decision: "deny",
			status: 403},
		{name: "privileged", method: "POST", path: "/containers/create?name=postgrest-" +
			"proj_0123456789abcdef", query: true, op: "container.create", decision: "deny",
			status: 403,
			body:   `{"Image":"launchdb/postgrest:v1","HostConfig":{"Privileged":true}}`},
		{name: "not-canonical", method: "GET", path: "/v1.41//containers/json", op: "unknown",
			decision: "deny", status: 400},
	}
	tagged := func(k loadRequest, tag string) string {
		if k.query {
			return k.path + "&Req=" + tag
		}
		return k.path + "?Req=" + tag
	}

	before := scrape(t, &http.Client{Timeout: 10 * time.Second}, px)
	transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	c := &http.Client{Timeout: 30 * time.Second, Transport: transport}
	defer transport.CloseIdleConnections()

	var (
		mu       sync.Mutex
		sent     = map[string]loadRequest{} // tag -> kind
		perKind  = map[string]int{}
		failures []string
		wg       sync.WaitGroup
		peakRSS  atomic.Int64
	)
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-tick.C:
				if v := procStatus(t, pid, "VmRSS"); v > peakRSS.Load() {
					peakRSS.Store(v)
				}
			}
		}
	}()
	end := time.Now().Add(duration)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(end); n++ {
				k := kinds[(i+n)%len(kinds)]
				tag := fmt.Sprintf("c%dn%d", i, n)
				a := call(c, k.method, baseURL(px)+tagged(k, tag), "application/json", k.body)
				mu.Lock()
				sent[tag] = k
				perKind[k.name]++
				switch {
				case a.err != nil || a.status != k.status:
					failures = append(failures, fmt.Sprintf("%s %s: got %v, want %d", k.name,
						tag, a, k.status))
				case !k.allowed && !strings.HasPrefix(dockerMessage(a.body), "sockpin: "):
					failures = append(failures, fmt.Sprintf("%s %s: refusal %q is not "+
						"Docker's error shape", k.name, tag, clip(a.body)))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stopRSS)
	<-rssDone
	hwm := procStatus(t, pid, "VmHWM")

	total := len(sent)
	t.Logf("%d clients for %v: %d requests (%.0f/s); per kind %v", clients, duration, total,
		float64(total)/duration.Seconds(), perKind)
	t.Logf("proxy memory: peak RSS sampled %.1f MiB, VmHWM %.1f MiB", float64(peakRSS.Load())/
		(1<<20), float64(hwm)/(1<<20))
	for i, f := range failures {
		if i == 20 {
			t.Errorf("... and %d more failures", len(failures)-20)
			break
		}
		t.Error(f)
	}
	if hwm > memoryBudget {
		t.Errorf("proxy peak RSS: got %d MiB, want under %d MiB", hwm>>20, memoryBudget>>20)
	}

	// Audit lines are written in batches: wait for all of them.
	var lines []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		lines = px.AuditLines()
		if len(lines) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	tagRE := regexp.MustCompile(`Req=(c\d+n\d+)`)
	seen := make(map[string]int, total)
	var wrong []string
	for _, l := range lines {
		path, _ := l["path"].(string)
		m := tagRE.FindStringSubmatch(path)
		if m == nil {
			continue
		}
		seen[m[1]]++
		k, ok := sent[m[1]]
		if !ok {
			wrong = append(wrong, "audit line for a request never sent: "+path)
			continue
		}
		if l["op"] != k.op || l["decision"] != k.decision || l["status"] != float64(k.status) {
			wrong = append(wrong, fmt.Sprintf("%s %s: audit says op %v decision %v status %v, "+
				"want %s %s %d", k.name, m[1], l["op"], l["decision"], l["status"], k.op,
				k.decision, k.status))
		}
	}
	for tag, k := range sent {
		if seen[tag] != 1 {
			wrong = append(wrong, fmt.Sprintf("%s %s: %d audit lines, want 1", k.name, tag,
				seen[tag]))
		}
	}
	sort.Strings(wrong)
	for i, w := range wrong {
		if i == 20 {
			t.Errorf("... and %d more audit problems", len(wrong)-20)
			break
		}
		t.Error(w)
	}

	after := scrape(t, &http.Client{Timeout: 10 * time.Second}, px)
	want := map[string]int{}
	for _, k := range sent {
		want[fmt.Sprintf(`sockpin_requests_total{decision=%q,op=%q}`, k.decision, k.op)]++
	}
	counted := 0
	for name, v := range after {
		if !strings.HasPrefix(name, "sockpin_requests_total{") {
			continue
		}
		delta := int(v - before[name])
		counted += delta
		if delta != want[name] {
			t.Errorf("%s: counted %d during the load, want %d", name, delta, want[name])
		}
	}
	if counted != total {
		t.Errorf("sockpin_requests_total: counted %d during the load, want %d", counted, total)
	}
}
