package filter

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// benchCase is one request for the decision benchmarks.
type benchCase struct {
	name, method, target, body string
}

var benchCases = []benchCase{
	{"ping", "GET", "/v1.41/_ping", ""},
	{"list", "GET", "/v1.41/containers/json?all=1", ""},
	{"inspect-by-name", "GET", "/v1.41/containers/postgrest-proj_0123456789abcdef/json", ""},
	{"stop-by-name", "POST", "/v1.41/containers/postgrest-proj_0123456789abcdef/stop?t=10", ""},
	{"kill-helper", "POST", "/v1.41/containers/launchdb-pgbouncer/kill?signal=SIGHUP", ""},
	{"create", "POST", "/v1.41/containers/create?name=postgrest-proj_0123456789abcdef", "create"},
	{"exec-create", "POST", "/v1.41/containers/launchdb-pgbouncer/exec", "exec"},
	{"exec-start", "POST", "/v1.41/exec/" + DefaultFixtures().Execs[0].ID + "/start", `{"Detach":false,"Tty":false}`},
	{"pull", "POST", "/v1.41/images/create?fromImage=launchdb%2Fpostgrest&tag=v1", ""},
	{"refused-privileged-create", "POST", "/v1.41/containers/create?name=postgrest-proj_0123456789abcdef", "privileged"},
	{"refused-archive", "GET", "/v1.41/containers/platform-postgres/archive?path=/", ""},
	{"refused-dotdot", "POST", "/v1.41/containers/x/../platform-postgres/stop", ""},
}

func benchBody(kind string) string {
	switch kind {
	case "create":
		b, _ := json.Marshal(legitCreate())
		return string(b)
	case "privileged":
		req := legitCreate()
		req.HostConfig.Privileged = true
		b, _ := json.Marshal(req)
		return string(b)
	case "exec":
		return `{"User":"root","AttachStdout":true,"AttachStderr":true,"Cmd":["sh","-c","x"]}`
	}
	return kind
}

// BenchmarkDecide measures the whole decision for one request, per
// operation: canonical check, classification, body template, policy
// lookup, with fixtures standing in for the daemon's answers.
func BenchmarkDecide(b *testing.B) {
	p := mustPolicy(b, "../policy.yaml")
	fx := DefaultFixtures()
	ctx := context.Background()
	for _, bc := range benchCases {
		body := benchBody(bc.body)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				call, d := p.Classify(bc.method, bc.target)
				if d == nil {
					var err error
					d, err = p.Decide(ctx, call, Body{ContentType: "application/json", Data: []byte(body)}, fx)
					if err != nil {
						b.Fatal(err)
					}
				}
				_ = d
			}
		})
	}
}

// listAnswer is a container list of n containers, as the daemon writes it.
func listAnswer(n int) []byte {
	var items []string
	for i := 0; i < n; i++ {
		labels := `{"io.launchdb.role":"postgrest","io.launchdb.project":"proj_0123456789abcdef"}`
		if i%3 == 0 {
			labels = `{"com.example":"x"}`
		}
		items = append(items, fmt.Sprintf(`{"Id":"%064d","Names":["/c%d"],"Image":"launchdb/postgrest:v1",`+
			`"ImageID":"sha256:%064d","Command":"/app serve","Created":1700000000,"Ports":[],"Labels":%s,`+
			`"State":"running","Status":"Up 5 minutes","HostConfig":{"NetworkMode":"launchdb-internal"},`+
			`"NetworkSettings":{"Networks":{"launchdb-internal":{"IPAMConfig":null,"Links":null,"Aliases":null,`+
			`"NetworkID":"%064d","EndpointID":"%064d","Gateway":"172.18.0.1","IPAddress":"172.18.0.%d",`+
			`"IPPrefixLen":16,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"02:42:ac:12:00:02"}}},`+
			`"Mounts":[{"Type":"volume","Name":"v","Source":"/var/lib/docker/volumes/v/_data","Destination":"/etc/postgrest/projects","Driver":"local","Mode":"ro","RW":false,"Propagation":""}]}`,
			i, i, i, labels, i, i, i))
	}
	return []byte("[" + strings.Join(items, ",") + "]\n")
}

// BenchmarkNarrowList measures narrowing a list answer of 31 containers to
// the visible ones.
func BenchmarkNarrowList(b *testing.B) {
	p := mustPolicy(b, "../policy.yaml")
	call, _ := p.Classify(http.MethodGet, "/containers/json?all=1")
	d, _ := p.Decide(context.Background(), call, Body{}, DefaultFixtures())
	body := listAnswer(31)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Narrow(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadContainer measures reading ID, name and labels from a
// container's inspect answer, as the daemon writes it.
func BenchmarkReadContainer(b *testing.B) {
	body := readInspect(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadContainer(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInspectAnswer measures what the proxy does with a container
// inspect answer: read the target's facts, decide, narrow the answer.
func BenchmarkInspectAnswer(b *testing.B) {
	p := mustPolicy(b, "../policy.yaml")
	body := readInspect(b)
	call, _ := p.Classify(http.MethodGet, "/v1.41/containers/postgrest-proj_0123456789abcdef/json")
	r := answerResolver{body}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Decide(context.Background(), call, Body{}, r)
		if err != nil || !d.Allowed || d.Answer == nil {
			b.Fatalf("%v %+v", err, d)
		}
	}
}

func readInspect(tb testing.TB) []byte {
	body, err := os.ReadFile("testdata/inspect.json")
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// answerResolver answers every container lookup with one inspect answer,
// read as the proxy's resolver reads it.
type answerResolver struct{ inspect []byte }

func (r answerResolver) Container(context.Context, string, string, bool) (*Container, error) {
	return ReadContainer(r.inspect)
}

func (r answerResolver) Exec(context.Context, string, string) (*Exec, error) {
	return nil, &LookupError{Status: http.StatusNotFound, Message: "no exec"}
}

func (r answerResolver) ListContainers(context.Context, string) ([]*Container, error) {
	return nil, nil
}

func (r answerResolver) Network(context.Context, string, string) (*Network, error) {
	return nil, &LookupError{Status: http.StatusNotFound, Message: "no network"}
}
