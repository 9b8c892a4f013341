package manager

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// do sends one request to the harness's handler and returns status, body and headers.
func (h *harness) do(
	method, path, body string, header map[string]string,
) (int, string, http.Header) {
	h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.svc.Handler().ServeHTTP(rec, req)
	data, _ := io.ReadAll(rec.Body)
	return rec.Code, string(data), rec.Header()
}

var (
	withKey  = map[string]string{"X-Internal-Key": "test-key", "Content-Type": "application/json"}
	wrongKey = map[string]string{"X-Internal-Key": "wrong", "Content-Type": "application/json"}
	noKey    = map[string]string{"Content-Type": "application/json"}
)

const (
	bodyRequired = `{"error":"bad_request","message":"projectId is required"}`
	bodyInvalid  = `{"error":"bad_request","message":"Invalid projectId format. Expected: proj_xxxxxxxxxxxxxxxx (16 hex chars)"}`
	body401      = `{"error":"unauthorized","message":"X-Internal-Key header required"}`
	body403      = `{"error":"forbidden","message":"Invalid API key"}`
)

func TestHTTPClientErrors(t *testing.T) {
	spawn := "/internal/postgrest/spawn"
	tests := []struct {
		name         string
		method, path string
		body         string
		header       map[string]string
		wantStatus   int
		wantBody     string
	}{
		{"spawn-without-key", "POST", spawn, `{"projectId":"` + testID + `"}`, noKey, 401, body401},
		{"spawn-empty-key", "POST", spawn, `{}`, map[string]string{"X-Internal-Key": ""}, 401,
			body401},
		{"spawn-wrong-key", "POST", spawn, `{"projectId":"` + testID + `"}`, wrongKey, 403,
			body403},
		{"spawn-key-prefix", "POST", spawn, `{}`, map[string]string{"X-Internal-Key": "test-ke"},
			403, body403},
		{"auth-before-validation", "POST", spawn, `{"projectId":"bad"}`, wrongKey, 403, body403},
		{"auth-before-json-parsing", "POST", spawn, `{not json`, noKey, 401, body401},
		{"delete-without-key", "DELETE", "/internal/postgrest/x;id", "", nil, 401, body401},
		{"restart-wrong-key", "POST", "/internal/postgrest/" + testID + "/restart", "", wrongKey,
			403, body403},
		{"list-without-key", "GET", "/internal/postgrest", "", nil, 401, body401},

		{"spawn-missing-id", "POST", spawn, `{}`, withKey, 400, bodyRequired},
		{"spawn-empty-body", "POST", spawn, ``, withKey, 400, bodyRequired},
		{"spawn-null-id", "POST", spawn, `{"projectId":null}`, withKey, 400, bodyRequired},
		{"spawn-empty-string-id", "POST", spawn, `{"projectId":""}`, withKey, 400, bodyRequired},
		{"spawn-zero-id", "POST", spawn, `{"projectId":0}`, withKey, 400, bodyRequired},
		{"spawn-false-id", "POST", spawn, `{"projectId":false}`, withKey, 400, bodyRequired},
		{"spawn-array-body", "POST", spawn, `["` + testID + `"]`, withKey, 400, bodyRequired},
		{"spawn-wrong-content-type-body-ignored", "POST", spawn, `{"projectId":"` + testID + `"}`,
			map[string]string{"X-Internal-Key": "test-key", "Content-Type": "text/plain"}, 400,
			bodyRequired},
		{"spawn-no-content-type-body-ignored", "POST", spawn, `{"projectId":"` + testID + `"}`,
			map[string]string{"X-Internal-Key": "test-key"}, 400, bodyRequired},
		{"spawn-array-id-refused", "POST", spawn, `{"projectId":["` + testID + `"]}`, withKey, 400,
			bodyInvalid},
		{"spawn-number-id-refused", "POST", spawn, `{"projectId":12}`, withKey, 400, bodyInvalid},
		{"spawn-object-id-refused", "POST", spawn, `{"projectId":{"a":1}}`, withKey, 400,
			bodyInvalid},
		{"spawn-true-id-refused", "POST", spawn, `{"projectId":true}`, withKey, 400, bodyInvalid},
		{"spawn-upper-case-id", "POST", spawn, `{"projectId":"proj_0123456789ABCDEF"}`, withKey,
			400, bodyInvalid},
		{"spawn-short-id", "POST", spawn, `{"projectId":"proj_0123"}`, withKey, 400, bodyInvalid},
		{"spawn-trailing-newline-id", "POST", spawn, `{"projectId":"` + testID + `\n"}`, withKey,
			400, bodyInvalid},
		{"spawn-injection-id", "POST", spawn, `{"projectId":"x\";id;\""}`, withKey, 400,
			bodyInvalid},
		{"spawn-case-variant-key-ignored", "POST", spawn, `{"ProjectID":"` + testID + `"}`, withKey,
			400, bodyRequired},
		{"spawn-unknown-project", "POST", spawn, `{"projectId":"` + testID + `"}`, withKey, 404,
			`{"error":"project_not_found","message":"Project ` + testID + ` not found"}`},

		{"delete-invalid-url-id", "DELETE", "/internal/postgrest/x%22%3Bid%3B%22", "", withKey, 400,
			bodyInvalid},
		{"delete-body-id-ignored", "DELETE", "/internal/postgrest/proj_BAD",
			`{"projectId":"` + testID + `"}`, withKey, 400, bodyInvalid},
		{"restart-invalid-url-id", "POST", "/internal/postgrest/proj_x/restart", "", withKey, 400,
			bodyInvalid},
		{"restart-body-id-ignored", "POST", "/internal/postgrest/nope/restart",
			`{"projectId":"` + testID + `"}`, withKey, 400, bodyInvalid},
		{"restart-not-running", "POST", "/internal/postgrest/" + testID + "/restart", "", withKey,
			404,
			`{"error":"not_found","message":"Container not running"}`},

		{"malformed-json", "POST", spawn, `{"projectId":`, withKey, 400, ""},
		{"top-level-string", "POST", spawn, `"` + testID + `"`, withKey, 400, ""},
		{"body-too-large", "POST", spawn, `{"projectId":"` + strings.Repeat("a",
			MaxBodyBytes) + `"}`, withKey, 413, ""},
		{"unsupported-charset", "POST", spawn, `{}`,
			map[string]string{"X-Internal-Key": "test-key",
				"Content-Type": "application/json; charset=latin1"}, 415, ""},
		{"unknown-path", "GET", "/nope", "", nil, 404,
			`{"error":"not_found","message":"Cannot GET /nope"}`},
		{"unknown-path-no-auth-needed", "POST", "/internal/postgrest/a/b/c", "", nil, 404,
			`{"error":"not_found","message":"Cannot POST /internal/postgrest/a/b/c"}`},
		{"wrong-method", "PUT", spawn, "", nil, 405,
			`{"error":"method_not_allowed","message":"Cannot PUT /internal/postgrest/spawn"}`},
		{"get-on-delete-route", "GET", "/internal/postgrest/" + testID, "", withKey, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			status, body, header := h.do(tt.method, tt.path, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Errorf("status: got %d, want %d (body %s)", status, tt.wantStatus, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body: got %s, want %s", body, tt.wantBody)
			}
			if ct := header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("content type: got %q, want application/json; charset=utf-8", ct)
			}
			var e errorBody
			if err := json.Unmarshal([]byte(body),
				&e); err != nil || e.Error == "" || e.Message == "" {
				t.Errorf("body %q is not a JSON error with error and message (%v)", body, err)
			}
			if n := h.docker.count("create"); n != 0 {
				t.Errorf("creates: got %d, want 0", n)
			}
		})
	}
}

func TestHTTPSpawnThenDestroy(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	status, body, _ := h.do("POST", "/internal/postgrest/spawn",
		`{"projectId":"`+testID+`","extra":1}`, withKey)
	if status != 201 {
		t.Fatalf("spawn: got %d %s, want 201", status, body)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"projectId", "containerId", "containerName", "port", "status",
		"configHash"} {
		if _, ok := res[k]; !ok {
			t.Errorf("spawn body %s lacks %q", body, k)
		}
	}
	if res["port"] != float64(3000) || res["status"] != "running" {
		t.Errorf("spawn body: got %s, want port 3000 and status running", body)
	}

	status, body, _ = h.do("POST", "/internal/postgrest/spawn", `{"projectId":"`+testID+`"}`,
		withKey)
	if status != 200 || !strings.Contains(body, `"status":"already_running"`) {
		t.Errorf("second spawn: got %d %s, want 200 already_running", status, body)
	}

	status, body, _ = h.do("POST", "/internal/postgrest/"+testID+"/restart",
		`{"projectId":"proj_aaaaaaaaaaaaaaaa"}`, withKey)
	want := `{"projectId":"` + testID +
		`","status":"reloaded","message":"PostgREST configuration reloaded via SIGHUP"}`
	if status != 200 || body != want {
		t.Errorf("restart: got %d %s, want 200 %s", status, body, want)
	}

	status, body, _ = h.do("GET", "/internal/postgrest", "", withKey)
	if status != 200 || !strings.HasPrefix(body,
		`{"containers":[{"projectId":"`+testID+`","containerName":"postgrest-`+testID+`","port":3000,"status":"running","health":`) {
		t.Errorf("list: got %d %s", status, body)
	}

	status, body, _ = h.do("DELETE", "/internal/postgrest/"+testID, "", withKey)
	want = `{"projectId":"` + testID +
		`","status":"stopped","message":"Container stopped and PgBouncer cleaned"}`
	if status != 200 || body != want {
		t.Errorf("destroy: got %d %s, want 200 %s", status, body, want)
	}
	status, body, _ = h.do("DELETE", "/internal/postgrest/"+testID, "", withKey)
	want = `{"projectId":"` + testID +
		`","status":"cleaned_up","message":"PgBouncer cleaned (container not found)"}`
	if status != 200 || body != want {
		t.Errorf("second destroy: got %d %s, want 200 %s", status, body, want)
	}
}

func TestHTTPExpressRoutingTolerance(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, method, path string
		header             map[string]string
		want               int
	}{
		{"trailing-slash", "GET", "/health/", nil, 200},
		{"upper-case-literal", "GET", "/HEALTH", nil, 200},
		{"head-on-get-route", "HEAD", "/health", nil, 200},
		{"mixed-case-api", "GET", "/Internal/PostgREST/", withKey, 200},
		{"upper-case-id-still-refused", "DELETE", "/internal/postgrest/PROJ_0123456789ABCDEF",
			withKey, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body, _ := h.do(tt.method, tt.path, "", tt.header); status != tt.want {
				t.Errorf("got %d %s, want %d", status, body, tt.want)
			}
		})
	}
}

func TestHTTPHealth(t *testing.T) {
	h := newHarness(t)
	status, body, _ := h.do("GET", "/health", "", nil)
	if want := `{"status":"healthy","service":"postgrest-manager"}`; status != 200 || body != want {
		t.Errorf("healthy: got %d %s, want 200 %s", status, body, want)
	}
	h.db.err = errors.New("connection refused")
	status, body, _ = h.do("GET", "/health", "", nil)
	want := `{"status":"unhealthy","service":"postgrest-manager","checks":{"database":"unavailable"}}`
	if status != 503 || body != want {
		t.Errorf("database down: got %d %s, want 503 %s", status, body, want)
	}
}

func TestHTTPMetrics(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	h.do("POST", "/internal/postgrest/spawn", `{"projectId":"`+testID+`"}`, withKey)
	status, body, _ := h.do("GET", "/metrics", "", nil)
	if status != 200 {
		t.Fatalf("metrics: got %d", status)
	}
	for _, want := range []string{
		`sockpin_manager_operations_total{op="spawn",outcome="running"} 1`,
		`sockpin_manager_operations_in_flight{op="spawn"} 0`,
		`sockpin_manager_operation_duration_seconds_count{op="spawn"} 1`,
		`sockpin_manager_http_requests_total{method="POST",route="/internal/postgrest/spawn",status="201"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
