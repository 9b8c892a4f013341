package filter

import (
	"net/http"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	tests := []struct {
		name   string
		method string
		target string
		op     Op
		params string
		status int // of the refusal, 0 when classified
	}{
		{"ping", "GET", "/_ping", OpPing, "", 0},
		{"ping-head", "HEAD", "/v1.41/_ping", OpPing, "", 0},
		{"list", "GET", "/containers/json?all=1", OpContainerList, "", 0},
		{"inspect", "GET", "/containers/abc/json", OpContainerInspect, "abc", 0},
		{"create", "POST", "/containers/create?name=x", OpContainerCreate, "", 0},
		{"remove", "DELETE", "/containers/abc?force=1", OpContainerRemove, "abc", 0},
		{"exec-create", "POST", "/containers/abc/exec", OpExecCreate, "abc", 0},
		{"exec-start", "POST", "/exec/abc/start", OpExecStart, "abc", 0},
		{"image-inspect-with-slashes", "GET", "/images/docker.io/launchdb/postgrest:v1/json",
			OpImageInspect, "docker.io/launchdb/postgrest:v1", 0},
		{"pull", "POST", "/images/create?fromImage=a&tag=b", OpImagePull, "", 0},
		{"network-connect", "POST", "/networks/n/connect", OpNetworkConnect, "n", 0},
		{"archive-known-and-refused", "GET", "/containers/abc/archive", "container.archive", "", 403},
		{"attach-ws-known-and-refused", "GET", "/containers/abc/attach/ws", "container.attach", "", 403},
		{"volumes-refused", "GET", "/volumes", "volume.list", "", 403},
		{"plugin-refused", "POST", "/plugins/a/b/enable", "plugin.enable", "", 403},
		{"wrong-method", "PUT", "/containers/create", OpUnknown, "", 403},
		{"unknown-path", "GET", "/containers/abc/json/json", OpUnknown, "", 403},
		{"uppercase-segment", "GET", "/Containers/json", OpUnknown, "", 403},
		{"lowercase-method", "get", "/_ping", OpUnknown, "", 400},
		{"trace", "TRACE", "/_ping", OpUnknown, "", 400},
		{"connect-method", "CONNECT", "docker:2375", OpUnknown, "", 400},
		{"unknown-query-key", "GET", "/containers/json?evil=1", OpContainerList, "", 403},
		{"upper-case-query-key-dropped", "POST", "/containers/create?name=x&HostConfig=%7B%7D",
			OpContainerCreate, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call, d := p.Classify(tt.method, tt.target)
			if tt.status != 0 {
				if d == nil || d.Status != tt.status || d.Op != tt.op {
					t.Fatalf("got %+v, want refusal %d of %s", d, tt.status, tt.op)
				}
				return
			}
			if d != nil {
				t.Fatalf("got refusal %q, want %s", d.Message(), tt.op)
			}
			if call.Op != tt.op || strings.Join(call.Params, ",") != tt.params {
				t.Errorf("got %s %v, want %s %s", call.Op, call.Params, tt.op, tt.params)
			}
		})
	}
}

func TestClassifyDropsUpperCaseQueryKeys(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	call, d := p.Classify(http.MethodPost, "/containers/create?name=x&Image=alpine&HostConfig=%7B%7D")
	if d != nil {
		t.Fatal(d.Message())
	}
	if len(call.Query) != 1 || call.Query["name"] != "x" {
		t.Errorf("got query %v, want only name=x", call.Query)
	}
}

// TestRouteTableCoversAllowableOps checks that every operation a policy can
// allow has a route, so none is unreachable.
func TestRouteTableCoversAllowableOps(t *testing.T) {
	seen := map[Op]bool{}
	for _, rs := range routes {
		for _, r := range rs {
			seen[r.op] = true
		}
	}
	for _, op := range AllowableOps() {
		if !seen[op] {
			t.Errorf("operation %s has no route", op)
		}
	}
}

func mustPolicy(t testing.TB, path string) *Policy {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
