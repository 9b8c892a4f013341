package manager

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Secrets the hostile-input test plants; none may ever reach the log.
const (
	plantedJWT      = "jwt-planted-secret-4f1c"
	plantedPassword = "pw-planted-secret-9d2e"
	sentWrongKey    = "wrong-key-sent-by-a-client-7b3a"
	sentBodySecret  = "body-secret-sent-by-a-client-5e8c"
)

// lookalikes are strings a reader could take for testID: other scripts, full-width forms,
// invisible and combining characters, case and spacing variants.
var lookalikes = map[string]string{
	"cyrillic-ie": "proj_0123456789abcd\u0435f",
	"greek-rho":   "\u03c1roj_0123456789abcdef",
	"fullwidth-digits": "proj_\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18" +
		"\uff19abcdef",
	"fullwidth-low-line":   "proj\uff3f0123456789abcdef",
	"zero-width-space":     "proj_0123456789abcdef\u200b",
	"zero-width-joiner":    "proj_0123\u200d456789abcdef",
	"long-s":               "proj_0123456789abcde\u017f",
	"kelvin-sign":          "proj_0123456789abcde\u212a",
	"combining-acute":      "proj_0123456789abcde\u0301",
	"right-to-left-mark":   "\u202eproj_0123456789abcdef",
	"upper-case":           "PROJ_0123456789ABCDEF",
	"leading-space":        " proj_0123456789abcdef",
	"trailing-nul":         "proj_0123456789abcdef\x00",
	"trailing-newline":     "proj_0123456789abcdef\n",
	"mathematical-digit-0": "proj_\U0001d7ce123456789abcdef",
}

// TestHTTPHostileInput sends bad input to every route through a real HTTP server: wrong
// types, huge and deeply nested bodies, look-alikes of project IDs in bodies and URLs, and
// header and log injection attempts. Every request that reaches the routes gets a JSON 4xx
// and changes nothing; malformed HTTP that net/http refuses itself never reaches them; the
// log has one JSON line per routed request and none of the secrets.
func TestHTTPHostileInput(t *testing.T) {
	h := newHarness(t)
	logs := &lockedLog{}
	h.svc.log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.seed(testID, plantedJWT, plantedPassword)
	srv := httptest.NewServer(h.svc.Handler())
	defer srv.Close()

	type request struct {
		name, method, path, body string
		header                   map[string]string
	}
	key := func(extra ...string) map[string]string {
		m := map[string]string{"X-Internal-Key": "test-key", "Content-Type": "application/json"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	const spawn = "/internal/postgrest/spawn"
	var reqs []request
	for name, id := range lookalikes {
		raw, _ := json.Marshal(id)
		reqs = append(reqs,
			request{"spawn-" + name, "POST", spawn, `{"projectId":` + string(raw) + `}`, key()},
			request{"spawn-utf8-" + name, "POST", spawn, `{"projectId":"` + id + `"}`, key()},
			request{"destroy-" + name, "DELETE", "/internal/postgrest/" + url.PathEscape(id), "",
				key()},
			request{"restart-" + name, "POST", "/internal/postgrest/" + url.PathEscape(id) +
				"/restart", "", key()},
		)
	}
	for name, v := range map[string]string{
		"number": `12`, "float": `1.5e300`, "true": `true`, "empty-array": `[]`,
		"object": `{"id":"` + testID + `"}`, "array-of-id": `["` + testID + `"]`,
		"nested-array": `[[["` + testID + `"]]]`, "negative": `-1`,
	} {
		reqs = append(reqs, request{"spawn-type-" + name, "POST", spawn,
			`{"projectId":` + v + `,"password":"` + sentBodySecret + `"}`, key()})
	}
	for name, body := range map[string]string{
		"top-level-string": `"` + testID + `"`, "top-level-number": `42`, "null": `null`,
		"deeply-nested":   strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		"invalid-utf8":    "{\"projectId\":\"proj_0123456789abcde\xff\"}",
		"trailing-data":   `{"projectId":"x"} {"projectId":"` + testID + `"}`,
		"huge":            `{"projectId":"` + strings.Repeat("a", 8<<20) + `"}`,
		"huge-whitespace": strings.Repeat(" ", 1<<20) + `{}`,
	} {
		reqs = append(reqs, request{"spawn-body-" + name, "POST", spawn, body, key()})
	}
	reqs = append(reqs,
		request{"huge-body-without-key", "POST", spawn, strings.Repeat("x", 8<<20),
			map[string]string{"Content-Type": "application/json"}},
		request{"huge-body-on-destroy", "DELETE", "/internal/postgrest/bad",
			strings.Repeat("x", 8<<20), key()},
		request{"wrong-key-logged-nowhere", "POST", spawn, `{"projectId":"` + testID + `"}`,
			map[string]string{"X-Internal-Key": sentWrongKey, "Content-Type": "application/json"}},
		request{"key-with-padding-of-another", "POST", spawn, `{}`,
			map[string]string{"X-Internal-Key": "test-key" + strings.Repeat(" x", 100000)}},
		request{"encoded-crlf-in-id", "DELETE",
			"/internal/postgrest/%0d%0aSet-Cookie:%20evil=1%0d%0a", "", key()},
		request{"encoded-crlf-in-unknown-route", "GET", "/nope%0d%0aX-Evil:%201", "", nil},
		request{"encoded-newline-log-forging", "GET",
			"/x%0a%7B%22level%22:%22ERROR%22,%22msg%22:%22forged%22%7D", "", nil},
		request{"content-encoding-gzip", "POST", spawn, `{}`,
			key("Content-Encoding", "gzip")},
		request{"charset-latin1", "POST", spawn, `{}`,
			key("Content-Type", "application/json; charset=latin1")},
		request{"long-path", "GET", "/internal/" + strings.Repeat("a", 200000), "", key()},
	)

	client := &http.Client{Timeout: 30 * time.Second}
	routed := 0
	for _, r := range reqs {
		t.Run(r.name, func(t *testing.T) {
			req, err := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(r.path, "%") {
				req.URL.Opaque = "//" + req.URL.Host + r.path
			}
			for k, v := range r.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%v", err)
			}
			routed++
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			wantJSON4xx(t, resp, data)
		})
	}

	t.Run("raw-header-injection", func(t *testing.T) {
		// What a client writes by hand. net/http refuses the malformed ones itself, with
		// its own short answer and before any route runs; the others are routed.
		for _, tt := range []struct {
			name, head string
			routed     bool
		}{
			{"bare-cr-in-key", "POST " + spawn + " HTTP/1.1\r\nHost: x\r\n" +
				"X-Internal-Key: test\rkey\r\nContent-Length: 2\r\n\r\n{}", false},
			{"obs-fold-key", "POST " + spawn + " HTTP/1.1\r\nHost: x\r\n" +
				"X-Internal-Key: " + sentWrongKey + "\r\n test-key\r\nContent-Length: 2\r\n" +
				"\r\n{}", true},
			{"space-in-header-name", "POST " + spawn + " HTTP/1.1\r\nHost: x\r\n" +
				"X-Internal-Key : test-key\r\nContent-Length: 2\r\n\r\n{}", false},
			{"nul-in-path", "DELETE /internal/postgrest/proj_\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
				false},
			{"two-keys", "POST " + spawn + " HTTP/1.1\r\nHost: x\r\nX-Internal-Key: test-key\r\n" +
				"X-Internal-Key: test-key\r\nContent-Type: application/json\r\n" +
				"Content-Length: 2\r\n\r\n{}", true},
			{"injected-looking-value", "POST " + spawn + " HTTP/1.1\r\nHost: x\r\n" +
				"X-Internal-Key: test-key\\r\\nX-Admin: 1\r\nContent-Length: 2\r\n\r\n{}", true},
			{"oversized-headers", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " +
				strings.Repeat("b", 2<<20) + "\r\n\r\n", false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				// A handler whose answer outgrows net/http's buffer is read by the client
				// before its log line is written: wait for the lines of the routed requests.
				before := waitRequestLines(t, logs, routed)
				c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				go io.WriteString(c, tt.head)
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				data, _ := io.ReadAll(resp.Body)
				if tt.routed {
					routed++
					wantJSON4xx(t, resp, data)
					return
				}
				if resp.StatusCode/100 != 4 || !resp.Close {
					t.Errorf("got %d %q, want net/http's 4xx closing the connection",
						resp.StatusCode, data)
				}
				if after := requestLines(logs); after != before {
					t.Errorf("a request net/http refused reached the routes: %d log lines",
						after-before)
				}
			})
		}
	})

	srv.Close() // waits for every handler, so every log line is written
	if n := h.docker.count("create"); n != 0 {
		t.Errorf("containers created: %d, want 0", n)
	}
	if n := h.docker.count("exec"); n != 0 {
		t.Errorf("PgBouncer edits: %d, want 0", n)
	}

	lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
	requests := 0
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not one JSON object: %q", clipLine(line))
			continue
		}
		if m["msg"] == "request" {
			requests++
		}
		if len(line) > 4096 {
			t.Errorf("log line of %d bytes, want long client input clipped: %q", len(line),
				clipLine(line))
		}
		if m["msg"] == "forged" {
			t.Errorf("a client forged a log line: %q", clipLine(line))
		}
	}
	if requests != routed {
		t.Errorf("request log lines: got %d, want one per routed request (%d)", requests, routed)
	}
	for _, secret := range []string{plantedJWT, plantedPassword, sentWrongKey, sentBodySecret,
		vectorKey, `"test-key"`} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains the secret %q", secret)
		}
	}
}

// requestLines counts the request log lines written so far.
func requestLines(logs *lockedLog) int {
	return strings.Count(logs.String(), `"msg":"request"`)
}

// waitRequestLines waits until the log holds n request lines and returns how many it holds.
func waitRequestLines(t *testing.T, logs *lockedLog, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for requestLines(logs) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := requestLines(logs)
	if got < n {
		t.Fatalf("request log lines: %d after 10 s, want %d", got, n)
	}
	return got
}

// wantJSON4xx checks an answer from the routes: a 4xx with a JSON error body, and no
// header a client put in the request line.
func wantJSON4xx(t *testing.T, resp *http.Response, data []byte) {
	t.Helper()
	var e errorBody
	if resp.StatusCode/100 != 4 || json.Unmarshal(data, &e) != nil || e.Error == "" ||
		e.Message == "" {
		t.Errorf("got %d %q, want a 4xx with a JSON error", resp.StatusCode, clipLine(string(data)))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("content type: got %q, want JSON", ct)
	}
	for _, h := range []string{"Set-Cookie", "X-Evil", "X-Admin"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("answer carries an injected header %s: %q", h, v)
		}
	}
}

func clipLine(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("%s... (%d bytes)", s[:300], len(s))
	}
	return s
}
