package filter

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name string
		body string
		err  string
	}{
		{"exact-keys", `{"Image":"a","HostConfig":{"Privileged":false}}`, ""},
		{"case-variant-key", `{"image":"a"}`, `unknown field "image"`},
		{"case-variant-nested", `{"HostConfig":{"privileged":true}}`, `unknown field "HostConfig.privileged"`},
		{"long-s-folding", `{"HostConfig":{"Bindſ":["/:/h"]}}`, "unknown field"},
		{"kelvin-folding", `{"Labels":{},"HostConfig":{"LinKs":[]}}`, "unknown field"},
		{"duplicate-key", `{"Image":"a","Image":"b"}`, `repeats key "Image"`},
		{"escaped-duplicate-key", `{"Image":"a","\u0049mage":"b"}`, `repeats key "Image"`},
		{"duplicate-map-key", `{"Labels":{"a":"1","a":"2"}}`, `repeats key "Labels.a"`},
		{"unknown-field", `{"X":1}`, `unknown field "X"`},
		{"trailing-document", `{"Image":"a"}{"Image":"b"}`, "data after"},
		{"trailing-garbage", `{"Image":"a"} x`, "data after"},
		{"not-json", `{"Image":`, "not valid JSON"},
		{"wrong-type", `{"Image":1}`, "does not decode"},
		{"object-where-list", `{"Cmd":{"a":1}}`, "does not decode"},
		{"too-deep", `{"Labels":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`, "nests deeper"},
		{"strslice-string-form", `{"Cmd":"sh"}`, ""},
		{"null-body", `null`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req container.CreateRequest
			err := decodeStrict([]byte(tt.body), &req)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

func TestFirstSet(t *testing.T) {
	f := false
	zero := int64(0)
	tests := []struct {
		name string
		hc   container.HostConfig
		want string
	}{
		{"empty", container.HostConfig{}, ""},
		{"pointer-to-false-is-set", container.HostConfig{Init: &f}, "HostConfig.Init"},
		{"pointer-to-zero-is-set", container.HostConfig{Resources: container.Resources{PidsLimit: &zero}},
			"HostConfig.PidsLimit"},
		{"empty-map-is-empty", container.HostConfig{Sysctls: map[string]string{}}, ""},
		{"empty-dns-is-empty", container.HostConfig{DNS: []string{}}, ""},
		{"empty-masked-paths-is-set", container.HostConfig{MaskedPaths: []string{}}, "HostConfig.MaskedPaths"},
		{"privileged", container.HostConfig{Privileged: true}, "HostConfig.Privileged"},
		{"embedded-resources-use-json-names", container.HostConfig{Resources: container.Resources{CPUShares: 2}},
			"HostConfig.CpuShares"},
		{"console-size-array", container.HostConfig{ConsoleSize: [2]uint{1, 0}}, "HostConfig.ConsoleSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := firstSet(reflect.ValueOf(tt.hc), "HostConfig"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// legitCreate is the manager's create request for proj_0123456789abcdef.
func legitCreate() container.CreateRequest {
	var req container.CreateRequest
	body := `{"Image":"launchdb/postgrest:v1","Cmd":["/etc/postgrest/projects/proj_0123456789abcdef.conf"],` +
		`"Env":["DOMAIN=api.example.com"],"Labels":{"io.launchdb.role":"postgrest",` +
		`"io.launchdb.project":"proj_0123456789abcdef"},"HostConfig":{"NetworkMode":"launchdb-internal",` +
		`"RestartPolicy":{"Name":"unless-stopped"},"Binds":["launchdb_postgrest-projects:/etc/postgrest/projects:ro"]},` +
		`"Healthcheck":{"Test":["CMD","curl","-f","http://localhost:3000/"],"Interval":30000000000,` +
		`"Timeout":10000000000,"Retries":3,"StartPeriod":30000000000}}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		panic(err)
	}
	return req
}

func TestCreateRule(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	pids := int64(512)
	tooMany := int64(513)
	tests := []struct {
		name   string
		cname  string
		edit   func(*container.CreateRequest)
		reason string
	}{
		{"manager-request", "postgrest-proj_0123456789abcdef", func(*container.CreateRequest) {}, ""},
		{"hardened", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.HostConfig.SecurityOpt = []string{"no-new-privileges"}
			r.HostConfig.PidsLimit = &pids
		}, ""},
		{"docker-io-spelling", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.Image = "docker.io/launchdb/postgrest:v1"
		}, ""},
		{"no-healthcheck", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.Healthcheck = nil
		}, ""},
		{"privileged", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.HostConfig.Privileged = true
		}, "field HostConfig.Privileged is not allowed"},
		{"name-label-disagree", "postgrest-proj_1111111111111111", func(*container.CreateRequest) {},
			"label io.launchdb.project must be"},
		{"extra-label", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.Labels["x"] = "y"
		}, `label "x" is not allowed`},
		{"other-image", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.Image = "launchdb/postgrest:v2"
		}, "is not pinned"},
		{"cmd-of-other-project", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.Cmd = []string{"/etc/postgrest/projects/proj_1111111111111111.conf"}
		}, "Cmd must be"},
		{"env-not-allowed", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.Env = append(r.Env, "LD_PRELOAD=/x.so")
		}, "LD_PRELOAD is not allowed"},
		{"env-twice", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.Env = append(r.Env, "DOMAIN=b")
		}, "set twice"},
		{"writable-bind", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.HostConfig.Binds = []string{"launchdb_postgrest-projects:/etc/postgrest/projects"}
		}, "Binds must be exactly"},
		{"restart-always", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.HostConfig.RestartPolicy.Name = "always"
		}, "restart policy"},
		{"pids-over-limit", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.HostConfig.PidsLimit = &tooMany
		}, "PidsLimit 513"},
		{"seccomp-unconfined", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.HostConfig.SecurityOpt = []string{"seccomp=unconfined"}
		}, "security option"},
		{"host-network", "postgrest-proj_0123456789abcdef", func(r *container.CreateRequest) {
			r.HostConfig.NetworkMode = "host"
		}, `network "host" is not allowed`},
		{"no-name", "", func(*container.CreateRequest) {}, "a container name is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := legitCreate()
			tt.edit(&req)
			body, _ := json.Marshal(req)
			target := "/v1.41/containers/create"
			if tt.cname != "" {
				target += "?name=" + tt.cname
			}
			call, d := p.Classify("POST", target)
			if d != nil {
				t.Fatal(d.Message())
			}
			d, err := p.Decide(context.Background(), call,
				Body{ContentType: "application/json", Data: body}, DefaultFixtures())
			if err != nil {
				t.Fatal(err)
			}
			if tt.reason == "" {
				if !d.Allowed {
					t.Fatalf("got refusal %q, want allowed", d.Message())
				}
				var fwd container.CreateRequest
				if err := json.Unmarshal(d.Body, &fwd); err != nil || fwd.Image != req.Image {
					t.Errorf("forwarded body %s does not carry the checked request", d.Body)
				}
				return
			}
			if d.Allowed || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("got %q (allowed %v), want a refusal containing %q", d.Reason, d.Allowed, tt.reason)
			}
		})
	}
}

// TestCreateRefusalListsEveryProblem: a create with forbidden fields, an
// unpinned image and no name hears of all three in one refusal.
func TestCreateRefusalListsEveryProblem(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	call, _ := p.Classify("POST", "/containers/create")
	body := `{"Image":"busybox","HostConfig":{"Privileged":true,"NetworkMode":"default"}}`
	d, err := p.Decide(context.Background(), call, Body{ContentType: "application/json", Data: []byte(body)},
		DefaultFixtures())
	if err != nil || d.Allowed {
		t.Fatalf("got %+v, %v; want a refusal", d, err)
	}
	for _, want := range []string{"HostConfig.Privileged is not allowed", `image "busybox" is not pinned`,
		"a container name is required"} {
		if !strings.Contains(d.Reason, want) {
			t.Errorf("reason %q lacks %q", d.Reason, want)
		}
	}
}

func FuzzCreateBody(f *testing.F) {
	legit, _ := json.Marshal(legitCreate())
	f.Add(legit)
	f.Add([]byte(`{"Image":"launchdb/postgrest:v1","HostConfig":{"Privileged":true}}`))
	f.Add([]byte(`{"image":"x","Image":"y"}`))
	p := mustPolicy(f, "../policy.yaml")
	call, _ := p.Classify("POST", "/containers/create?name=postgrest-proj_0123456789abcdef")
	fx := DefaultFixtures()
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := p.Decide(context.Background(), call, Body{ContentType: "application/json", Data: body}, fx)
		if err != nil || !d.Allowed {
			return
		}
		// Whatever is allowed must decode, as the daemon decodes it, to a
		// request the rule allows, and must be the body forwarded.
		var fwd container.CreateRequest
		if err := json.Unmarshal(d.Body, &fwd); err != nil {
			t.Fatalf("allowed body re-encodes unreadably: %v", err)
		}
		if fwd.HostConfig == nil || fwd.HostConfig.Privileged || len(fwd.HostConfig.CapAdd) > 0 ||
			len(fwd.HostConfig.Mounts) > 0 || fwd.HostConfig.NetworkMode != "launchdb-internal" {
			t.Fatalf("allowed a dangerous create: %s", body)
		}
		var daemon container.CreateRequest
		if err := json.Unmarshal(body, &daemon); err != nil {
			t.Fatalf("allowed a body the daemon cannot decode: %s", body)
		}
		again, _ := json.Marshal(daemon)
		if string(again) != string(d.Body) {
			t.Fatalf("the daemon would read %s, sockpin checked %s", again, d.Body)
		}
	})
}

func FuzzExecBody(f *testing.F) {
	f.Add([]byte(`{"Cmd":["sh","-c","kill -HUP 1"],"User":"root","AttachStdout":true}`))
	f.Add([]byte(`{"Cmd":["sh"],"Privileged":false,"privileged":true}`))
	p := mustPolicy(f, "../policy.yaml")
	call, _ := p.Classify("POST", "/containers/launchdb-pgbouncer/exec")
	fx := DefaultFixtures()
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := p.Decide(context.Background(), call, Body{ContentType: "application/json", Data: body}, fx)
		if err != nil || !d.Allowed {
			return
		}
		var opts container.ExecOptions
		if err := json.Unmarshal(body, &opts); err != nil {
			t.Fatalf("allowed a body the daemon cannot decode: %s", body)
		}
		if opts.Privileged || opts.Tty || opts.AttachStdin || len(opts.Env) > 0 || opts.WorkingDir != "" ||
			opts.User != "root" || len(opts.Cmd) != 8 {
			t.Fatalf("allowed a dangerous exec: %s", body)
		}
	})
}

func FuzzObjectField(f *testing.F) {
	f.Add([]byte(`{"Id":"x","Config":{"Labels":{"a":"b"}},"Labels":{"c":"\"}"}}`))
	f.Add([]byte(`{"\u004cabels":{"a":"1"},"Labels":null}`))
	f.Add([]byte(` { "Labels" : [1, {"x": "]"}] , "y": -1.5e3 } `))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			return
		}
		got, err := objectField(b, "Labels")
		if err != nil {
			t.Fatalf("objectField failed on valid JSON %q: %v", b, err)
		}
		if string(got) != string(m["Labels"]) {
			t.Fatalf("objectField(%q) = %q, encoding/json says %q", b, got, m["Labels"])
		}
	})
}

func FuzzArrayElements(f *testing.F) {
	f.Add([]byte(`[{"a":"]"},[1,2],"x",null, 3]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want []json.RawMessage
		if json.Unmarshal(b, &want) != nil {
			return
		}
		var got []string
		if err := arrayElements(b, func(e []byte) error { got = append(got, string(e)); return nil }); err != nil {
			t.Fatalf("arrayElements failed on valid JSON %q: %v", b, err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d elements, encoding/json says %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != string(want[i]) {
				t.Fatalf("element %d: got %q, want %q", i, got[i], want[i])
			}
		}
	})
}

func TestNetworkInspectNarrowed(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	call, d := p.Classify("GET", "/networks/launchdb-internal")
	if d != nil {
		t.Fatal(d.Message())
	}
	d, err := p.Decide(context.Background(), call, Body{}, DefaultFixtures())
	if err != nil || !d.Allowed {
		t.Fatalf("got %v %v, want allowed", d, err)
	}
	answer := string(d.Answer)
	for _, hidden := range []string{"platform-postgres", "launchdb-socket-proxy"} {
		if strings.Contains(answer, hidden) {
			t.Errorf("network inspect shows unmanaged container %s: %s", hidden, answer)
		}
	}
	for _, shown := range []string{"postgrest-proj_0123456789abcdef", "launchdb-pgbouncer"} {
		if !strings.Contains(answer, shown) {
			t.Errorf("network inspect hides visible container %s: %s", shown, answer)
		}
	}
}

// readContainerReference is what ReadContainer must find, by way of
// encoding/json: keys compared exactly, the last occurrence winning.
func readContainerReference(b []byte) (*Container, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	c := &Container{}
	for key, dst := range map[string]*string{"Id": &c.ID, "Name": &c.Name} {
		if raw, ok := top[key]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, err
			}
		}
	}
	c.Name = strings.TrimPrefix(c.Name, "/")
	if raw, ok := top["Config"]; ok {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, err
		}
		if raw, ok := cfg["Labels"]; ok {
			if err := json.Unmarshal(raw, &c.Labels); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func checkReadContainer(t *testing.T, b []byte) {
	t.Helper()
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return
	}
	want, wantErr := readContainerReference(b)
	got, err := ReadContainer(b)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("ReadContainer(%q) error %v, encoding/json says %v", b, err, wantErr)
	}
	if err != nil {
		return
	}
	if got.ID != want.ID || got.Name != want.Name || !maps.Equal(got.Labels, want.Labels) ||
		(got.Labels == nil) != (want.Labels == nil) {
		t.Fatalf("ReadContainer(%q) = %q %q %v, encoding/json says %q %q %v", b,
			got.ID, got.Name, got.Labels, want.ID, want.Name, want.Labels)
	}
}

func TestReadContainer(t *testing.T) {
	inspect, err := os.ReadFile("testdata/inspect.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadContainer(inspect)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "postgrest-proj_0123456789abcdef" || len(c.ID) != 64 ||
		c.Labels["io.launchdb.project"] != "proj_0123456789abcdef" || len(c.Labels) != 2 {
		t.Fatalf("read %q %q %v from the inspect answer", c.ID, c.Name, c.Labels)
	}
	for _, b := range []string{
		string(inspect),
		`{"Id":"a","Id":"b","Name":"/n","Config":{"Labels":{"x":"1","x":"2","y":null}}}`,
		`{"\u0049d":"esc","Config":{"\u004cabels":{"k\u00e9":"v\"q"}}}`,
		"{\"Name\":\"/\xff\",\"Config\":{\"Labels\":{\"\xf8\":null,\"k\":\"v\xc3\"}}}",
		`{"id":"lower","name":"x","config":{"Labels":{"a":"b"}}}`,
		`{"Config":null}`,
		`{"Config":{"Labels":null}}`,
		`{"Config":{"Labels":{"a":1}}}`,
		`{"Config":"x"}`,
		`{"Id":7}`,
		`{"Name":null,"Id":null}`,
		`null`,
	} {
		checkReadContainer(t, []byte(b))
	}
}

func FuzzReadContainer(f *testing.F) {
	if inspect, err := os.ReadFile("testdata/inspect.json"); err == nil {
		f.Add(inspect)
	}
	f.Add([]byte(`{"Id":"a","Id":"b","Name":"/n","Config":{"Labels":{"x":"1","x":"2","y":null}}}`))
	f.Add([]byte(`{"\u0049d":"esc","Config":{"\u004cabels":{"k\u00e9":"v\"q"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkReadContainer(t, b) })
}
