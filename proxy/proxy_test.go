package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/launchdb/sockpin/filter"
)

const (
	managedID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	helperID  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	otherID   = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	execID    = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
	// failExecID is an exec of the helper whose start the daemon refuses.
	failExecID = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
)

// fakeDaemon is a small Engine API on a real listener: it knows three
// containers and records every request it gets.
type fakeDaemon struct {
	mu   sync.Mutex
	seen []string
	srv  *httptest.Server
}

func (f *fakeDaemon) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

var fakeContainers = map[string]string{
	"postgrest-proj_0123456789abcdef": fmt.Sprintf(`{"Id":%q,"Name":"/postgrest-proj_0123456789abcdef",`+
		`"Config":{"Env":["DOMAIN=x"],"Labels":{"io.launchdb.role":"postgrest","io.launchdb.project":"proj_0123456789abcdef"}}}`, managedID),
	"launchdb-pgbouncer": fmt.Sprintf(`{"Id":%q,"Name":"/launchdb-pgbouncer",`+
		`"Config":{"Env":["PGPASSWORD=hunter2"],"Labels":{"io.launchdb.role":"pgbouncer"}}}`, helperID),
	"platform-postgres": fmt.Sprintf(`{"Id":%q,"Name":"/platform-postgres","Config":{"Env":["P=secret"]}}`, otherID),
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	f := &fakeDaemon{}
	byID := map[string]string{managedID: "postgrest-proj_0123456789abcdef", helperID: "launchdb-pgbouncer",
		otherID: "platform-postgres"}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		path := r.URL.Path
		if strings.HasPrefix(path, "/v1.") {
			path = path[strings.Index(path[1:], "/")+1:]
		}
		parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
		switch {
		case path == "/_ping":
			io.WriteString(w, "OK")
		case path == "/containers/json":
			list := []string{
				fmt.Sprintf(`{"Id":%q,"Labels":{"io.launchdb.role":"postgrest","io.launchdb.project":"proj_0123456789abcdef"}}`, managedID),
				fmt.Sprintf(`{"Id":%q,"Labels":{}}`, otherID),
				fmt.Sprintf(`{"Id":%q,"Labels":{"io.launchdb.role":"pgbouncer"}}`, helperID),
			}
			// Like the daemon, the newest first and at most limit.
			if n, _ := strconv.Atoi(r.URL.Query().Get("limit")); n > 0 && n < len(list) {
				list = list[:n]
			}
			fmt.Fprintf(w, "[%s]", strings.Join(list, ","))
		case len(parts) == 3 && parts[0] == "containers" && parts[2] == "json":
			name := parts[1]
			if n, ok := byID[name]; ok {
				name = n
			}
			body, ok := fakeContainers[name]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"message":"No such container: %s"}`, parts[1])
				return
			}
			io.WriteString(w, body)
		case path == "/containers/"+managedID+"/restart":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"message":"Cannot restart container %s: cannot join network of a non running container: %s"}`+"\n",
				managedID, otherID)
		case path == "/exec/"+execID+"/json":
			fmt.Fprintf(w, `{"ID":%q,"ContainerID":%q,"Running":false}`, execID, helperID)
		case path == "/exec/"+execID+"/start":
			upgrade(w, r)
		case path == "/exec/"+failExecID+"/json":
			fmt.Fprintf(w, `{"ID":%q,"ContainerID":%q,"Running":false}`, failExecID, helperID)
		case path == "/exec/"+failExecID+"/start":
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"message":"container %s cannot join the namespaces of %s: not running"}`+"\n",
				helperID, otherID)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// upgrade answers like the daemon's exec start: 101, then the output.
func upgrade(w http.ResponseWriter, r *http.Request) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n" +
		"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	buf.WriteString("exec output\n")
	buf.Flush()
}

func newTestHandler(t *testing.T, f *fakeDaemon, log io.Writer) *Handler {
	p, err := filter.Load("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	addr := Address{Network: "tcp", Addr: strings.TrimPrefix(f.srv.URL, "http://")}
	if log == nil {
		log = io.Discard
	}
	return New(p, NewUpstream(addr, time.Second), slog.New(slog.NewJSONHandler(log, nil)), nil, Options{})
}

func serve(h *Handler, method, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RequestURI = target
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestRefusalNeverReachesDaemon(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	w := serve(h, "POST", "/containers/create?name=postgrest-proj_0123456789abcdef",
		`{"Image":"launchdb/postgrest:v1","HostConfig":{"Privileged":true}}`)
	if w.Code != http.StatusForbidden {
		t.Fatalf("got %d, want 403", w.Code)
	}
	var e struct{ Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.HasPrefix(e.Message, "sockpin: ") {
		t.Errorf("got body %q, want Docker's error shape with a sockpin message", w.Body)
	}
	if w.Header().Get("Connection") != "close" {
		t.Errorf("got Connection %q, want close after a refusal", w.Header().Get("Connection"))
	}
	if got := f.requests(); len(got) != 0 {
		t.Errorf("the daemon saw %v, want nothing", got)
	}
}

func TestInspectAnswerIsTheLookup(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	w := serve(h, "GET", "/v1.41/containers/postgrest-proj_0123456789abcdef/json", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), managedID) {
		t.Fatalf("got %d %q, want the inspect answer", w.Code, w.Body)
	}
	if got := f.requests(); len(got) != 1 {
		t.Errorf("the daemon saw %v, want one inspect", got)
	}
}

func TestHelperEnvRedacted(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	w := serve(h, "GET", "/containers/launchdb-pgbouncer/json", "")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "hunter2") ||
		!strings.Contains(w.Body.String(), "PGPASSWORD="+filter.RedactedValue) {
		t.Fatalf("got %d %q, want the inspect with Env values redacted", w.Code, w.Body)
	}
}

func TestListNarrowed(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	w := serve(h, "GET", "/containers/json?all=1", "")
	var list []struct {
		ID string `json:"Id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID[:1])
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Errorf("got containers %v, want the managed one and the helper only", ids)
	}
}

func TestListLimitCountsVisibleOnly(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	// Every list the daemon gets filters on the label key of the groups.
	const roleKey = "filters=%7B%22label%22%3A%7B%22io.launchdb.role%22%3Atrue%7D%7D"
	for _, c := range []struct{ query, upstream, want string }{
		{"limit=2", "/containers/json?all=1&" + roleKey, "a,b"},
		{"limit=1&all=0", "/containers/json?all=1&" + roleKey, "a"},
		{"limit=0", "/containers/json?" + roleKey, "a,b"},
		{"limit=-1&all=1", "/containers/json?all=1&" + roleKey, "a,b"},
	} {
		w := serve(h, "GET", "/containers/json?"+c.query, "")
		var list []struct {
			ID string `json:"Id"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
			t.Fatalf("%s: %v in %q", c.query, err, w.Body)
		}
		var ids []string
		for _, e := range list {
			ids = append(ids, e.ID[:1])
		}
		got := f.requests()
		if strings.Join(ids, ",") != c.want || got[len(got)-1] != "GET "+c.upstream {
			t.Errorf("%s: got containers %v after the daemon saw %q, want %s after %q",
				c.query, ids, got[len(got)-1], c.want, c.upstream)
		}
	}
}

func TestDaemonErrorsNameNoOtherContainer(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	w := serve(h, "POST", "/containers/postgrest-proj_0123456789abcdef/restart", "")
	body := w.Body.String()
	if w.Code != http.StatusInternalServerError || strings.Contains(body, otherID[:12]) ||
		!strings.Contains(body, managedID) || !strings.Contains(body, "<redacted by sockpin>") ||
		w.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("got %d %q, want the daemon's 500 naming the target but not the other container", w.Code, body)
	}
}

func TestForwardUsesFullID(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	w := serve(h, "POST", "/v1.41/containers/postgrest-proj_0123456789abcdef/stop?t=5", "")
	if w.Code != http.StatusNoContent {
		t.Fatalf("got %d %q, want 204", w.Code, w.Body)
	}
	got := f.requests()
	want := "POST /v1.41/containers/" + managedID + "/stop?t=5"
	if len(got) != 2 || got[1] != want {
		t.Errorf("the daemon saw %v, want an unversioned inspect then %q", got, want)
	}
	// A second request by full ID is decided from the label cache.
	serve(h, "POST", "/containers/"+managedID+"/start", "")
	if got := f.requests(); len(got) != 3 {
		t.Errorf("the daemon saw %v, want the start alone (labels cached by ID)", got)
	}
}

func TestDaemonUnreachable(t *testing.T) {
	f := newFakeDaemon(t)
	h := newTestHandler(t, f, nil)
	f.srv.Close()
	for _, target := range []string{"/_ping", "/containers/postgrest-proj_0123456789abcdef/json"} {
		w := serve(h, "GET", target, "")
		if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), `"message":"sockpin: `) {
			t.Errorf("%s: got %d %q, want 502 in Docker's error shape", target, w.Code, w.Body)
		}
	}
}

func TestAuditLinePerRequest(t *testing.T) {
	f := newFakeDaemon(t)
	var log bytes.Buffer
	h := newTestHandler(t, f, &log)
	serve(h, "GET", "/_ping", "")
	serve(h, "POST", "/containers/platform-postgres/stop", "")
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d audit lines, want 2:\n%s", len(lines), log.String())
	}
	var deny map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &deny); err != nil {
		t.Fatal(err)
	}
	// An unmanaged container is answered as absent (404); the audit line
	// keeps the real reason and names the container.
	for k, want := range map[string]any{"op": "container.stop", "decision": "deny", "rule": "default-deny",
		"status": 404.0, "method": "POST", "path": "/containers/platform-postgres/stop", "container_id": otherID,
		"reason": `container "platform-postgres" is in no group that allows container.stop`} {
		if deny[k] != want {
			t.Errorf("audit %s: got %v, want %v", k, deny[k], want)
		}
	}
}

// startExec starts an exec through a real server in front of h, so that
// the connection can be taken over, and reads the answer's head.
func startExec(t *testing.T, h http.Handler, id string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := `{"Detach":false,"Tty":false}`
	fmt.Fprintf(conn, "POST /exec/%s/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", id, len(body), body)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// TestExecStartSwitchesProtocols: the client gets the daemon's 101 and the
// stream after it.
func TestExecStartSwitchesProtocols(t *testing.T) {
	_, br, resp := startExec(t, newTestHandler(t, newFakeDaemon(t), nil), execID)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v, want 101", resp)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "exec output\n" {
		t.Errorf("got stream %q, want the exec output", rest)
	}
}

// TestExecStartRefusalNamesNoOtherContainer: when the daemon answers an
// exec start with an error instead of 101, the client gets it without the
// IDs of containers it may not see.
func TestExecStartRefusalNamesNoOtherContainer(t *testing.T) {
	_, _, resp := startExec(t, newTestHandler(t, newFakeDaemon(t), nil), failExecID)
	data, _ := io.ReadAll(resp.Body)
	got := string(data)
	if resp.StatusCode != http.StatusConflict || strings.Contains(got, otherID[:12]) ||
		!strings.Contains(got, helperID) || !strings.Contains(got, filter.RedactedValue) ||
		resp.ContentLength != int64(len(data)) {
		t.Errorf("got %d %q, want the daemon's 409 naming the helper but not the other container",
			resp.StatusCode, got)
	}
}

// TestBodyBudget holds one request's body open and shows that the budget
// counts the bytes that arrived, not those announced: a body that would
// pass the budget is refused with 503 before it is read on, and the budget
// comes back when the first request ends.
func TestBodyBudget(t *testing.T) {
	f := newFakeDaemon(t)
	p, err := filter.Load("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	addr := Address{Network: "tcp", Addr: strings.TrimPrefix(f.srv.URL, "http://")}
	h := New(p, NewUpstream(addr, time.Second), nil, nil, Options{BodyBudget: 100})
	post := func(body string) int {
		r := httptest.NewRequest("POST", "/containers/create?name=y", strings.NewReader(body))
		r.RequestURI = r.URL.RequestURI()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	// The first body announces a megabyte and sends 60 bytes, then waits.
	pr, pw := io.Pipe()
	first := httptest.NewRequest("POST", "/containers/create?name=x", pr)
	first.RequestURI, first.ContentLength = first.URL.RequestURI(), 1<<20
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), first)
	}()
	go pw.Write([]byte(strings.Repeat(" ", 60)))
	for deadline := time.Now().Add(5 * time.Second); h.bodies.TryAcquire(41); {
		h.bodies.Release(41)
		if time.Now().After(deadline) {
			t.Fatal("the first body's 60 bytes were not charged")
		}
		time.Sleep(time.Millisecond)
	}
	if code := post(strings.Repeat(" ", 30) + "{}"); code == http.StatusServiceUnavailable {
		t.Errorf("a 32-byte body: got 503, want it read (60 of 100 bytes held, whatever was announced)")
	}
	if code := post(strings.Repeat(" ", 60) + "{}"); code != http.StatusServiceUnavailable {
		t.Errorf("a 62-byte body: got %d, want 503 while the first holds 60 of 100 bytes", code)
	}
	pw.Close()
	<-done
	if code := post(strings.Repeat(" ", 60) + "{}"); code == http.StatusServiceUnavailable {
		t.Errorf("a 62-byte body after the first ended: got 503, want the budget back")
	}
	if !h.bodies.TryAcquire(100) {
		t.Error("budget still held after every request ended")
	}
}
