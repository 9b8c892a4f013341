package filter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Fixtures stand in for the daemon when a policy is tried offline: the
// containers, execs, networks and images a request may refer to.
type Fixtures struct {
	Containers []FixtureContainer `yaml:"containers" json:"containers"`
	Execs      []FixtureExec      `yaml:"execs" json:"execs"`
	Networks   []FixtureNetwork   `yaml:"networks" json:"networks"`
	Images     []FixtureImage     `yaml:"images" json:"images"`
}

// FixtureContainer is a container as the daemon would report it.
type FixtureContainer struct {
	Name   string            `yaml:"name" json:"name"`
	ID     string            `yaml:"id" json:"id"`
	Labels map[string]string `yaml:"labels" json:"labels"`
	Env    []string          `yaml:"env" json:"env"`
}

// FixtureExec is an exec instance in a container (named by its name).
type FixtureExec struct {
	ID        string `yaml:"id" json:"id"`
	Container string `yaml:"container" json:"container"`
}

// FixtureNetwork is a network.
type FixtureNetwork struct {
	Name string `yaml:"name" json:"name"`
	ID   string `yaml:"id" json:"id"`
}

// FixtureImage is a local image, for {{imgid:REF}} placeholders.
type FixtureImage struct {
	Ref string `yaml:"ref" json:"ref"`
	ID  string `yaml:"id" json:"id"`
}

// fakeID derives a stable 64-hex ID from a name.
func fakeID(kind, name string) string {
	sum := sha256.Sum256([]byte(kind + "/" + name))
	return hex.EncodeToString(sum[:])
}

// DefaultFixtures are the objects the red-team corpus assumes: two
// managed PostgREST containers, the PgBouncer helper, two unmanaged
// containers, the tenant network and a non-pinned image.
func DefaultFixtures() *Fixtures {
	f := &Fixtures{
		Containers: []FixtureContainer{
			{Name: "postgrest-proj_0123456789abcdef", Labels: map[string]string{
				"io.launchdb.role": "postgrest", "io.launchdb.project": "proj_0123456789abcdef"}},
			{Name: "postgrest-proj_1111111111111111", Labels: map[string]string{
				"io.launchdb.role": "postgrest", "io.launchdb.project": "proj_1111111111111111"}},
			{Name: "launchdb-pgbouncer", Labels: map[string]string{"io.launchdb.role": "pgbouncer"},
				Env: []string{"PGBOUNCER_AUTH_PASSWORD=sockpin-canary-7f3a9c"}},
			{Name: "platform-postgres", Env: []string{"POSTGRES_PASSWORD=sockpin-canary-7f3a9c"}},
			{Name: "launchdb-socket-proxy", Env: []string{"POSTGRES_PASSWORD=sockpin-canary-7f3a9c"}},
		},
		Execs: []FixtureExec{
			{Container: "launchdb-pgbouncer"}, {Container: "platform-postgres"},
			{Container: "postgrest-proj_0123456789abcdef"},
		},
		Networks: []FixtureNetwork{{Name: "launchdb-internal"}, {Name: "platform-private"},
			{Name: "bridge"}},
		Images: []FixtureImage{{Ref: "launchdb/postgrest:v1"}, {Ref: "alpine:latest"}},
	}
	f.fill()
	return f
}

// LoadFixtures reads a fixtures file (YAML or JSON). IDs left out are
// derived from names.
func LoadFixtures(path string) (*Fixtures, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading fixtures %q: %w", path, err)
	}
	f := new(Fixtures)
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		return nil, fmt.Errorf("fixtures %q: %w", path, err)
	}
	f.fill()
	return f, nil
}

func (f *Fixtures) fill() {
	for i := range f.Containers {
		if f.Containers[i].ID == "" {
			f.Containers[i].ID = fakeID("container", f.Containers[i].Name)
		}
	}
	for i := range f.Execs {
		if f.Execs[i].ID == "" {
			f.Execs[i].ID = fakeID("exec", f.Execs[i].Container)
		}
	}
	for i := range f.Networks {
		if f.Networks[i].ID == "" {
			f.Networks[i].ID = fakeID("network", f.Networks[i].Name)
		}
	}
	for i := range f.Images {
		if f.Images[i].ID == "" {
			f.Images[i].ID = "sha256:" + fakeID("image", f.Images[i].Ref)
		}
	}
}

// Expand replaces the corpus placeholders ({{id:NAME}}, {{id12:NAME}},
// {{exec:NAME}}, {{imgid:REF}}, {{imgid12:REF}}, {{digest:REF}}) with
// fixture values.
func (f *Fixtures) Expand(s string) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	var pairs []string
	for _, c := range f.Containers {
		pairs = append(pairs, "{{id:"+c.Name+"}}", c.ID, "{{id12:"+c.Name+"}}", c.ID[:12])
	}
	for _, e := range f.Execs {
		pairs = append(pairs, "{{exec:"+e.Container+"}}", e.ID)
	}
	for _, im := range f.Images {
		hexID := strings.TrimPrefix(im.ID, "sha256:")
		pairs = append(pairs, "{{imgid:"+im.Ref+"}}", im.ID, "{{imgid12:"+im.Ref+"}}", hexID[:12],
			"{{digest:"+im.Ref+"}}", im.ID)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// ExpandCase returns the case with its placeholders replaced, so that a
// Content-Length computed from the body is right.
func (f *Fixtures) ExpandCase(c Case) Case {
	c.Path, c.Body, c.Raw = f.Expand(c.Path), f.Expand(c.Body), f.Expand(c.Raw)
	h := make(map[string]string, len(c.Headers))
	for k, v := range c.Headers {
		h[k] = f.Expand(v)
	}
	c.Headers = h
	return c
}

// Container resolves like the daemon: full ID, then exact name, then a
// unique ID prefix.
func (f *Fixtures) Container(_ context.Context, _, ref string, _ bool) (*Container, error) {
	c := f.findContainer(ref)
	if c == nil {
		return nil, notFound("No such container: %s", ref)
	}
	inspect, _ := json.Marshal(map[string]any{
		"Id": c.ID, "Name": "/" + c.Name,
		"Config": map[string]any{"Labels": c.Labels, "Env": c.Env},
	})
	return &Container{ID: c.ID, Name: c.Name, Labels: c.Labels, Inspect: inspect}, nil
}

// ListContainers lists every container.
func (f *Fixtures) ListContainers(context.Context, string) ([]*Container, error) {
	var out []*Container
	for _, c := range f.Containers {
		out = append(out, &Container{ID: c.ID, Name: c.Name, Names: []string{"/" + c.Name}, Labels: c.Labels})
	}
	return out, nil
}

func (f *Fixtures) findContainer(ref string) *FixtureContainer {
	for i, c := range f.Containers {
		if c.ID == ref {
			return &f.Containers[i]
		}
	}
	for i, c := range f.Containers {
		if c.Name == ref || "/"+c.Name == ref {
			return &f.Containers[i]
		}
	}
	var found *FixtureContainer
	for i, c := range f.Containers {
		if strings.HasPrefix(c.ID, ref) {
			if found != nil {
				return nil
			}
			found = &f.Containers[i]
		}
	}
	return found
}

// Exec resolves an exec ID.
func (f *Fixtures) Exec(_ context.Context, _, id string) (*Exec, error) {
	for _, e := range f.Execs {
		if e.ID == id {
			c := f.findContainer(e.Container)
			if c == nil {
				return nil, notFound("No such container: %s", e.Container)
			}
			inspect, _ := json.Marshal(map[string]any{"ID": e.ID, "ContainerID": c.ID})
			return &Exec{ID: e.ID, ContainerID: c.ID, Inspect: inspect}, nil
		}
	}
	return nil, notFound("No such exec instance: %s", id)
}

// Network resolves a network name, ID or ID prefix, in the daemon's
// order; a prefix that fits several networks is refused as the daemon
// refuses it.
func (f *Fixtures) Network(_ context.Context, _, ref string) (*Network, error) {
	found := slices.IndexFunc(f.Networks, func(n FixtureNetwork) bool { return n.ID == ref })
	if found < 0 {
		found = slices.IndexFunc(f.Networks, func(n FixtureNetwork) bool { return n.Name == ref })
	}
	if found < 0 {
		matches := 0
		for i, n := range f.Networks {
			if strings.HasPrefix(n.ID, ref) {
				found, matches = i, matches+1
			}
		}
		if matches > 1 {
			return nil, &LookupError{Status: http.StatusBadRequest,
				Message: fmt.Sprintf("%d matches found based on ID prefix: network %s is ambiguous", matches, ref)}
		}
	}
	if found < 0 {
		return nil, notFound("network %s not found", ref)
	}
	n := f.Networks[found]
	// Every fixture container is attached to every network.
	members := map[string]any{}
	for _, c := range f.Containers {
		members[c.ID] = map[string]string{"Name": c.Name}
	}
	inspect, _ := json.Marshal(map[string]any{"Name": n.Name, "Id": n.ID, "Containers": members})
	return &Network{ID: n.ID, Name: n.Name, Inspect: inspect}, nil
}
