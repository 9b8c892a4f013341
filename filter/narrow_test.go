package filter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

// decideWith classifies and decides one request against the default policy
// and the given fixtures.
func decideWith(t *testing.T, fx Resolver, method, target, body string) *Decision {
	t.Helper()
	p := mustPolicy(t, "../policy.yaml")
	call, d := p.Classify(method, target)
	if d != nil {
		return d
	}
	d, err := p.Decide(context.Background(), call, Body{ContentType: "application/json", Data: []byte(body)}, fx)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestHiddenTargetsLookAbsent(t *testing.T) {
	fx := DefaultFixtures()
	tests := []struct {
		name, method, target, body, public string
	}{
		{"unmanaged-container", "GET", "/containers/platform-postgres/json", "", noSuchContainer("platform-postgres")},
		{"absent-container", "GET", "/containers/nothing-here/json", "", noSuchContainer("nothing-here")},
		{"unmanaged-by-prefix", "POST", "/containers/" + fx.Containers[3].ID[:12] + "/stop", "",
			noSuchContainer(fx.Containers[3].ID[:12])},
		{"exec-in-unmanaged", "GET", "/exec/" + fx.Execs[1].ID + "/json", "",
			"sockpin: no exec instance " + fx.Execs[1].ID + " that this client may see"},
		{"hidden-network", "GET", "/networks/platform-private", "", noSuchNetwork("platform-private")},
		{"absent-network", "GET", "/networks/nothing-here", "", noSuchNetwork("nothing-here")},
		{"connect-unmanaged", "POST", "/networks/launchdb-internal/connect", `{"Container":"platform-postgres"}`,
			noSuchContainer("platform-postgres")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideWith(t, fx, tt.method, tt.target, tt.body)
			if d.Allowed || d.Status != http.StatusNotFound || d.Message() != tt.public {
				t.Fatalf("got %d %q, want 404 %q", d.Status, d.Message(), tt.public)
			}
			if d.Reason == "" || d.Reason == d.Public {
				t.Errorf("the audit reason %q hides the real one", d.Reason)
			}
		})
	}
	// A visible container the operation is not allowed on is still 403.
	if d := decideWith(t, fx, "POST", "/containers/launchdb-pgbouncer/stop", ""); d.Status != http.StatusForbidden {
		t.Errorf("stop of the helper: got %d, want 403", d.Status)
	}
}

// refusingResolver answers every lookup with the daemon's error.
type refusingResolver struct{ err *LookupError }

func (r refusingResolver) Container(context.Context, string, string, bool) (*Container, error) {
	return nil, r.err
}
func (r refusingResolver) Exec(context.Context, string, string) (*Exec, error) { return nil, r.err }
func (r refusingResolver) Network(context.Context, string, string) (*Network, error) {
	return nil, r.err
}
func (r refusingResolver) ListContainers(context.Context, string) ([]*Container, error) {
	return nil, r.err
}

func TestLookupRefusalsLookAbsent(t *testing.T) {
	lookups := []struct{ method, target, body, public string }{
		{"GET", "/containers/8/json", "", noSuchContainer("8")},
		{"POST", "/containers/8/kill?signal=SIGHUP", "", noSuchContainer("8")},
		{"GET", "/containers/pg-8/json", "", noSuchContainer("pg-8")},
		{"GET", "/exec/" + strings.Repeat("8", 64) + "/json", "",
			"sockpin: no exec instance " + strings.Repeat("8", 64) + " that this client may see"},
		{"GET", "/networks/d", "", noSuchNetwork("d")},
		{"POST", "/networks/d/disconnect", `{"Container":"postgrest-proj_0123456789abcdef"}`, noSuchNetwork("d")},
	}
	// Each daemon version's words for an ID prefix that fits several
	// targets, and for no target at all.
	for _, le := range []*LookupError{
		{Status: http.StatusBadRequest, Message: "2 matches found based on ID prefix: network d is ambiguous"},
		{Status: http.StatusBadRequest, Message: "multiple IDs found with provided prefix: 8"},
		{Status: http.StatusNotFound, Message: "Error: No such container: 8"},
		{Status: http.StatusConflict, Message: "Multiple IDs found with provided prefix: 8"},
		{Status: http.StatusInternalServerError, Message: "Multiple IDs found with provided prefix: 8"},
	} {
		for _, l := range lookups {
			d := decideWith(t, refusingResolver{le}, l.method, l.target, l.body)
			if d.Allowed || d.Status != http.StatusNotFound || d.Message() != l.public || d.Reason == "" || d.Reason == d.Public {
				t.Errorf("%s %s, daemon says %d %q: got %d %q (reason %q), want 404 %q",
					l.method, l.target, le.Status, le.Message, d.Status, d.Message(), d.Reason, l.public)
			}
		}
	}
	// A daemon failure passes on.
	fail := &LookupError{Status: http.StatusInternalServerError, Message: "cannot reach containerd"}
	if d := decideWith(t, refusingResolver{fail}, "GET", "/containers/8/json", ""); d.Status != fail.Status ||
		d.Message() != fail.Message {
		t.Errorf("a daemon failure: got %d %q, want the daemon's answer", d.Status, d.Message())
	}
	// An API version the daemon does not speak says nothing about what
	// exists: the daemon's answer passes on.
	le := &LookupError{Status: http.StatusBadRequest,
		Message: "client version 1.51 is too new. Maximum supported API version is 1.41"}
	for _, l := range lookups {
		d := decideWith(t, refusingResolver{le}, l.method, l.target, l.body)
		if d.Allowed || d.Status != http.StatusBadRequest || d.Message() != le.Message {
			t.Errorf("%s %s: got %d %q, want the daemon's 400 %q", l.method, l.target, d.Status, d.Message(), le.Message)
		}
	}
}

func TestSharedPrefixResolvesToTheVisibleContainer(t *testing.T) {
	id := func(prefix string) string { return prefix + strings.Repeat("0", 64-len(prefix)) }
	managed := map[string]string{"io.launchdb.role": "postgrest", "io.launchdb.project": "proj_0123456789abcdef"}
	other := map[string]string{"io.launchdb.role": "postgrest", "io.launchdb.project": "proj_1111111111111111"}
	fx := &Fixtures{Containers: []FixtureContainer{
		{Name: "postgrest-proj_0123456789abcdef", ID: id("ab1"), Labels: managed},
		{Name: "platform-postgres", ID: id("ab2")},
		{Name: "postgrest-proj_1111111111111111", ID: id("cd1"), Labels: other},
		{Name: "postgrest-proj_0123456789abcdef-copy", ID: id("cd2"), Labels: managed},
		// A hidden container whose name is the prefix: the daemon would
		// take the name first.
		{Name: "ab", ID: id("ef9")},
	}, Networks: []FixtureNetwork{{Name: "launchdb-internal"}}}
	fx.fill()
	// ab: the daemon finds two containers, the client sees one.
	for _, target := range []string{"/containers/ab/json", "/v1.41/containers/ab/stop"} {
		method := map[bool]string{true: "GET", false: "POST"}[strings.HasSuffix(target, "json")]
		d := decideWith(t, fx, method, target, "")
		if !d.Allowed || d.ContainerID != id("ab1") {
			t.Errorf("%s %s: got allowed=%v %q for %q, want the visible container %s",
				method, target, d.Allowed, d.Message(), d.ContainerID, id("ab1"))
		}
		if !strings.HasSuffix(target, "json") && d.Path != "/v1.41/containers/"+id("ab1")+"/stop" {
			t.Errorf("%s: forwarded as %q, want the full ID of the visible container", target, d.Path)
		}
	}
	exec := decideWith(t, fx, "POST", "/containers/ab/exec", `{"Cmd":["true"]}`)
	connect := decideWith(t, fx, "POST", "/networks/launchdb-internal/connect", `{"Container":"ab"}`)
	for _, d := range []*Decision{exec, connect} {
		if d.Status == http.StatusNotFound {
			t.Errorf("%s of prefix ab: got 404 %q, want the visible container's decision", d.Op, d.Message())
		}
	}
	// cd: two visible containers have it, so it stays ambiguous; ab2: only
	// the hidden one.
	for _, ref := range []string{"cd", "ab2"} {
		d := decideWith(t, fx, "GET", "/containers/"+ref+"/json", "")
		if d.Allowed || d.Status != http.StatusNotFound || d.Message() != noSuchContainer(ref) {
			t.Errorf("prefix %s: got %d %q, want 404 %q", ref, d.Status, d.Message(), noSuchContainer(ref))
		}
	}
}

func TestSharedPrefixResolvesToTheVisibleNetwork(t *testing.T) {
	id := func(prefix string) string { return prefix + strings.Repeat("0", 64-len(prefix)) }
	fx := DefaultFixtures()
	fx.Networks = []FixtureNetwork{{Name: "launchdb-internal", ID: id("ab1")}, {Name: "platform-private", ID: id("ab2")}}
	if _, err := fx.Network(context.Background(), "", "ab"); err == nil {
		t.Fatal("the fixtures resolve the shared prefix; the test needs it ambiguous")
	}
	for _, c := range []struct{ method, target, body string }{
		{"GET", "/networks/ab", ""},
		{"POST", "/networks/ab/disconnect", `{"Container":"postgrest-proj_0123456789abcdef"}`},
	} {
		d := decideWith(t, fx, c.method, c.target, c.body)
		if d.Status == http.StatusNotFound || d.Rule == RuleLookup {
			t.Errorf("%s %s: got %d %q, want the decision for launchdb-internal", c.method, c.target, d.Status, d.Message())
		}
	}
	if d := decideWith(t, fx, "GET", "/networks/ab2", ""); d.Allowed || d.Status != http.StatusNotFound {
		t.Errorf("the hidden network's own prefix: got %d %q, want 404", d.Status, d.Message())
	}
}

func TestListFiltersThatNameObjectsAreRefused(t *testing.T) {
	fx := DefaultFixtures()
	for _, f := range []string{`{"before":["platform-postgres"]}`, `{"since":["x"]}`, `{"network":["x"]}`} {
		d := decideWith(t, fx, "GET", "/containers/json?filters="+urlEncode(f), "")
		if d.Allowed {
			t.Errorf("filters %s: allowed, want refused", f)
		}
	}
	// The old query forms of before and since name objects too.
	for _, q := range []string{"before=platform-postgres", "since=x"} {
		if d := decideWith(t, fx, "GET", "/containers/json?"+q, ""); d.Allowed {
			t.Errorf("query %s: allowed, want refused", q)
		}
	}
	if d := decideWith(t, fx, "GET", "/containers/json?filters="+urlEncode(`{"label":["a=b"],"name":["x"]}`), ""); !d.Allowed {
		t.Errorf("label and name filters: got %q, want allowed", d.Message())
	}
}

// TestListLeavesHiddenContainersToTheDaemon: the list the daemon gets
// carries a label filter on the key every visible container has, in
// whichever form the client sent its label filter; id filters and size,
// which would tell of hidden containers, are refused.
func TestListLeavesHiddenContainersToTheDaemon(t *testing.T) {
	fx := DefaultFixtures()
	for _, tt := range []struct{ filters, want string }{
		{"", `{"label":{"io.launchdb.role":true}}`},
		{`{"label":["io.launchdb.project=proj_0123456789abcdef"]}`,
			`{"label":{"io.launchdb.project=proj_0123456789abcdef":true,"io.launchdb.role":true}}`},
		{`{"label":{"io.launchdb.role=postgrest":true},"status":["running"]}`,
			`{"label":{"io.launchdb.role":true,"io.launchdb.role=postgrest":true},"status":["running"]}`},
		{`{"name":["postgrest-"]}`, `{"label":{"io.launchdb.role":true},"name":["postgrest-"]}`},
	} {
		path := "/containers/json?all=1"
		if tt.filters != "" {
			path += "&filters=" + urlEncode(tt.filters)
		}
		d := decideWith(t, fx, "GET", path, "")
		if !d.Allowed {
			t.Errorf("filters %s: got %q, want allowed", tt.filters, d.Message())
			continue
		}
		q, err := url.ParseQuery(d.Query)
		if err != nil || q.Get("filters") != tt.want || q.Get("all") != "1" {
			t.Errorf("filters %s: forwarded query %q, want filters %s and all=1", tt.filters, d.Query, tt.want)
		}
	}
	for _, path := range []string{
		"/containers/json?filters=" + urlEncode(`{"id":["8"]}`),
		"/containers/json?size=1",
		"/containers/json?all=1&size=true",
		"/containers/json?filters=" + urlEncode(`{"label":"io.launchdb.role"}`),
	} {
		if d := decideWith(t, fx, "GET", path, ""); d.Allowed {
			t.Errorf("%s: allowed, want refused", path)
		}
	}
}

func urlEncode(s string) string {
	r := strings.NewReplacer("{", "%7B", "}", "%7D", `"`, "%22", "[", "%5B", "]", "%5D", ":", "%3A", ",", "%2C", "=", "%3D")
	return r.Replace(s)
}

// execFixture answers exec lookups with a given process.
type execFixture struct {
	*Fixtures
	inspect string
}

func (f execFixture) Exec(ctx context.Context, v, id string) (*Exec, error) {
	ex, err := f.Fixtures.Exec(ctx, v, id)
	if err == nil {
		ex.Inspect = []byte(f.inspect)
	}
	return ex, err
}

func TestForeignExecsAreChecked(t *testing.T) {
	fx := DefaultFixtures()
	start := "/exec/" + fx.Execs[0].ID + "/start"
	tests := []struct {
		name, inspect, want string
	}{
		{"plain", `{"OpenStdin":false,"ProcessConfig":{"entrypoint":"/app","arguments":["version"]}}`, ""},
		{"privileged", `{"ProcessConfig":{"entrypoint":"sh","privileged":true}}`, "privileged"},
		{"stdin", `{"OpenStdin":true,"ProcessConfig":{"entrypoint":"sh"}}`, "standard input"},
		{"tty", `{"ProcessConfig":{"entrypoint":"sh","tty":true}}`, "terminal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideWith(t, execFixture{fx, tt.inspect}, "POST", start, `{"Detach":false,"Tty":false}`)
			if tt.want == "" && !d.Allowed || tt.want != "" && (d.Allowed || !strings.Contains(d.Reason, tt.want)) {
				t.Fatalf("got allowed=%v %q, want %q", d.Allowed, d.Reason, tt.want)
			}
		})
	}
}

func TestExecStartPinned(t *testing.T) {
	p, err := Parse([]byte(`
schema: 1
groups:
  helper:
    labels: {io.launchdb.role: pgbouncer}
    allow: [exec]
    exec_start_pinned: true
    exec:
      - rule: reload
        user: root
        argv: [kill, -HUP, "1"]
`))
	if err != nil {
		t.Fatal(err)
	}
	fx := DefaultFixtures()
	for _, tt := range []struct {
		inspect string
		allow   bool
	}{
		{`{"ProcessConfig":{"entrypoint":"kill","arguments":["-HUP","1"],"user":"root"}}`, true},
		{`{"ProcessConfig":{"entrypoint":"/app","arguments":["version"],"user":"root"}}`, false},
		{`{"ProcessConfig":{"entrypoint":"kill","arguments":["-HUP","1"],"user":""}}`, false},
	} {
		call, _ := p.Classify("GET", "/exec/"+fx.Execs[0].ID+"/json")
		d, err := p.Decide(context.Background(), call, Body{}, execFixture{fx, tt.inspect})
		if err != nil || d.Allowed != tt.allow {
			t.Errorf("%s: got allowed=%v (%v), want %v", tt.inspect, d.Allowed, err, tt.allow)
		}
	}
	var explained strings.Builder
	p.Explain(&explained, "pinned.yaml", false)
	if want := "started and inspected only when their command and user fit an exec rule"; !strings.Contains(
		strings.Join(strings.Fields(explained.String()), " "), want) {
		t.Errorf("the explanation lacks %q:\n%s", want, explained.String())
	}
}

func TestContainerAnswersNarrowed(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	body := `{"Id":"x","ExecIDs":["e1"],"Config":{"Env":["A=secret"]},` +
		`"NetworkSettings":{"Networks":{"launchdb-internal":{"IPAddress":"1"},"platform-private":{"IPAddress":"2"}}}}`
	out, err := p.narrowContainer([]byte(body), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ExecIDs         []string
		Config          struct{ Env []string }
		NetworkSettings struct{ Networks map[string]json.RawMessage }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.ExecIDs != nil || got.Config.Env[0] != "A="+RedactedValue ||
		len(got.NetworkSettings.Networks) != 1 || got.NetworkSettings.Networks["launchdb-internal"] == nil {
		t.Errorf("got %s, want no exec IDs, redacted env and only launchdb-internal", out)
	}
	// The edited answer keeps the daemon's order and bytes everywhere else,
	// so that it does not stand out from answers with nothing to hide.
	want := `{"Id":"x","ExecIDs":null,"Config":{"Env":["A=` + RedactedValue + `"]},` +
		`"NetworkSettings":{"Networks":{"launchdb-internal":{"IPAddress":"1"}}}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	for _, plain := range []string{
		`{"Id":"x","ExecIDs":null,"NetworkSettings":{"Networks":{"launchdb-internal":{}}}}`,
		`{"Id":"x","HostConfig":{"NetworkMode":"launchdb-internal"}}`,
		`{"Id":"x","HostConfig":{"NetworkMode":"host"}}`,
		`{"Id":"x","HostConfig":{"NetworkMode":"default"}}`,
		`{"Id":"x","HostsPath":"/h/x/hosts","Config":{"Hostname":"x"},"HostConfig":{"NetworkMode":` +
			`"launchdb-internal","Cgroup":""},"NetworkSettings":{"Networks":{"launchdb-internal":{"Links":null}}}}`,
	} {
		if out, _ := p.narrowContainer([]byte(plain), nil, false); string(out) != plain {
			t.Errorf("an answer with nothing to hide was rewritten: %s", out)
		}
	}
	// Other references to hidden containers: joined namespaces, legacy links
	// and volumes-from, a link name in a list entry's Names, and the legacy
	// fields that repeat an endpoint on the hidden default bridge.
	body = `{"Id":"x","Names":["/hidden/alias","/pgb"],"HostConfig":{"NetworkMode":"launchdb-internal",` +
		`"PidMode":"container:5e97aa","IpcMode":"private","Links":["/hidden:/pgb/hl"],"VolumesFrom":["hidden"]},` +
		`"NetworkSettings":{"IPAddress":"172.17.0.2","Gateway":"172.17.0.1","IPPrefixLen":16,` +
		`"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}`
	out, err = p.narrowContainer([]byte(body), nil, false)
	var refs struct {
		Names      []string
		HostConfig struct {
			NetworkMode, PidMode, IpcMode string
			Links, VolumesFrom            []string
		}
		NetworkSettings struct {
			IPAddress, Gateway string
			IPPrefixLen        int
			Networks           map[string]any
		}
	}
	if err != nil || json.Unmarshal(out, &refs) != nil {
		t.Fatalf("got %s, %v", out, err)
	}
	hc, ns := refs.HostConfig, refs.NetworkSettings
	if strings.Join(refs.Names, ",") != "/pgb" || hc.NetworkMode != "launchdb-internal" ||
		hc.PidMode != RedactedValue || hc.IpcMode != "private" || hc.Links != nil || hc.VolumesFrom != nil ||
		ns.IPAddress != "" || ns.Gateway != "" || ns.IPPrefixLen != 0 || len(ns.Networks) != 0 ||
		strings.Contains(string(out), "hidden") || strings.Contains(string(out), "5e97aa") {
		t.Errorf("got %s, want every reference to hidden objects gone", out)
	}
	// A container that joins another's network namespace takes its
	// hostname and the paths of its files; a cgroup can be another's too;
	// an endpoint's legacy links name the linked containers.
	hiddenID := strings.Repeat("5e97aa", 10) + "5e97"
	body = `{"Id":"x","ResolvConfPath":"/var/lib/docker/containers/` + hiddenID + `/resolv.conf",` +
		`"HostnamePath":"/var/lib/docker/containers/` + hiddenID + `/hostname","HostsPath":` +
		`"/var/lib/docker/containers/` + hiddenID + `/hosts","Config":{"Hostname":"5e97aa5e97aa",` +
		`"Domainname":"","Env":null},"HostConfig":{"NetworkMode":"container:` + hiddenID + `",` +
		`"Cgroup":"container:` + hiddenID + `"},"NetworkSettings":{"Networks":{}}}`
	out, err = p.narrowContainer([]byte(body), nil, false)
	r := `"` + RedactedValue + `"`
	want = `{"Id":"x","ResolvConfPath":` + r + `,"HostnamePath":` + r + `,"HostsPath":` + r +
		`,"Config":{"Hostname":` + r + `,"Domainname":"","Env":null},"HostConfig":{"NetworkMode":` + r +
		`,"Cgroup":` + r + `},"NetworkSettings":{"Networks":{}}}`
	if err != nil || string(out) != want {
		t.Errorf("joined namespaces: got  %s (%v)\nwant %s", out, err, want)
	}
	body = `{"Id":"x","NetworkSettings":{"Networks":{"launchdb-internal":{"Links":["hidden-db:db"],` +
		`"Aliases":["a"]},"platform-private":{"Links":["hidden-db:db"]}}}}`
	out, err = p.narrowContainer([]byte(body), nil, false)
	want = `{"Id":"x","NetworkSettings":{"Networks":{"launchdb-internal":{"Links":null,"Aliases":["a"]}}}}`
	if err != nil || string(out) != want {
		t.Errorf("endpoint links: got  %s (%v)\nwant %s", out, err, want)
	}
	// A network mode naming a network or container the client may not see
	// is redacted, in inspect answers and list entries alike.
	for _, mode := range []string{"platform-private", "bridge", "container:5e97aa"} {
		body := `{"Id":"x","HostConfig":{"NetworkMode":"` + mode + `","Privileged":false}}`
		out, err := p.narrowContainer([]byte(body), nil, false)
		var got struct{ HostConfig struct{ NetworkMode string } }
		if err != nil || json.Unmarshal(out, &got) != nil || got.HostConfig.NetworkMode != RedactedValue ||
			strings.Contains(string(out), mode) {
			t.Errorf("network mode %s: got %s (%v), want it redacted", mode, out, err)
		}
	}
}

func TestImageAnswersNarrowed(t *testing.T) {
	d := decideWith(t, DefaultFixtures(), "GET", "/v1.41/images/launchdb/postgrest:v1/json", "")
	if !d.Allowed || !d.Narrows() {
		t.Fatalf("image inspect of the pinned image: got %q, want allowed and narrowed", d.Message())
	}
	body := `{"Id":"sha256:` + strings.Repeat("a", 64) + `","RepoTags":["launchdb/postgrest:v1","other/tool:1"],` +
		`"RepoDigests":["launchdb/postgrest@sha256:` + strings.Repeat("b", 64) + `","other/tool@sha256:` +
		strings.Repeat("c", 64) + `"],"Parent":"sha256:` + strings.Repeat("d", 64) + `","Container":"` +
		strings.Repeat("e", 64) + `","ContainerConfig":{"Hostname":"eeeeeeeeeeee"},"Config":{"Hostname":` +
		`"eeeeeeeeeeee","Image":"hidden/tool:1","Cmd":["/app"]}}`
	out, err := d.Narrow([]byte(body))
	var got struct {
		RepoTags, RepoDigests []string
		Parent, Container     string
		ContainerConfig       map[string]any
		Config                struct {
			Hostname, Image string
			Cmd             []string
		}
	}
	if err != nil || json.Unmarshal(out, &got) != nil {
		t.Fatalf("got %s, %v", out, err)
	}
	if strings.Join(got.RepoTags, ",") != "launchdb/postgrest:v1" || len(got.RepoDigests) != 1 ||
		!strings.HasPrefix(got.RepoDigests[0], "launchdb/postgrest@") || got.Parent != "" || got.Container != "" ||
		got.ContainerConfig != nil || len(got.Config.Cmd) != 1 || got.Config.Hostname != "" ||
		got.Config.Image != "" || strings.Contains(string(out), "other/tool") ||
		strings.Contains(string(out), "hidden") || strings.Contains(string(out), "eeeeeeeeeeee") {
		t.Errorf("got %s, want only the pinned repository's names and no parent or build container", out)
	}
	// The answer keeps the daemon's order.
	if !strings.HasPrefix(string(out), `{"Id":"sha256:`) {
		t.Errorf("got %s, want the daemon's order of members", out)
	}
}

// TestAnswerMemberInAnotherCaseRefused: a client decoding an answer with
// encoding/json reads "config" as Config, so an answer whose edited member
// comes in another case is refused rather than passed on unedited; map keys
// (network names) are exact.
func TestAnswerMemberInAnotherCaseRefused(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	for _, body := range []string{
		`{"Id":"x","config":{"Env":["A=s"]}}`,
		`{"Id":"x","Config":{"Env":["A=s"]},"CONFIG":{"Env":["B=s"]}}`,
		`{"Id":"x","Config":{"env":["A=s"]}}`,
		`{"Id":"x","Config":{"\u0045nv":["A=s"],"ENV":["B=s"]}}`,
	} {
		if out, err := p.narrowContainer([]byte(body), nil, true); err == nil {
			t.Errorf("%s: got %s, want an error", body, out)
		}
	}
	body := `{"Id":"x","Config":{"Env":["A=s"]},"NetworkSettings":{"Networks":` +
		`{"launchdb-internal":{},"Launchdb-Internal":{},"bridge":{}}}}`
	out, err := p.narrowContainer([]byte(body), nil, true)
	if err != nil || !strings.Contains(string(out), `"launchdb-internal"`) ||
		strings.Contains(string(out), `"Launchdb-Internal"`) || strings.Contains(string(out), `"bridge"`) {
		t.Errorf("got %s, %v; want only the launchdb-internal endpoint kept", out, err)
	}
}

// FuzzNarrowContainer feeds container answers to narrowing: what comes out
// is valid JSON, and nothing it should have taken out is left.
func FuzzNarrowContainer(f *testing.F) {
	p := mustPolicy(f, "../policy.yaml")
	if inspect, err := os.ReadFile("testdata/inspect.json"); err == nil {
		f.Add(inspect)
	}
	f.Add([]byte(`{"Id":"x","Names":["/h/a","/b"],"ExecIDs":["e"],"Config":{"Env":["A=s"]},` +
		`"HostConfig":{"NetworkMode":"container:h","PidMode":"container:h","Links":["/h:/b/a"]},` +
		`"NetworkSettings":{"IPAddress":"1","Networks":{"bridge":{},"launchdb-internal":{}}}}`))
	f.Add([]byte(`{"Id":"x","HostsPath":"/c/h/hosts","Config":{"Hostname":"h","Env":null},` +
		`"HostConfig":{"NetworkMode":"container:h","Cgroup":"container:h"},` +
		`"NetworkSettings":{"Networks":{"launchdb-internal":{"Links":["h:a"]}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		out, err := p.narrowContainer(b, nil, true)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("narrowing %q gave invalid JSON %q", b, out)
		}
		var got struct {
			ExecIDs any
			Config  struct{ Env []string }
		}
		if json.Unmarshal(out, &got) == nil {
			for _, e := range got.Config.Env {
				if !strings.HasSuffix(e, "="+RedactedValue) {
					t.Fatalf("narrowing %q left Env %q", b, e)
				}
			}
		}
	})
}
