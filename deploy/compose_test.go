package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// settings are the variables deploy/compose.yaml requires.
var settings = []string{"DOCKER_GID=105", "INTERNAL_API_KEY=key",
	"LAUNCHDB_MASTER_KEY=master", "POSTGREST_MANAGER_PASSWORD=secret"}

// composeFile is the part of `docker-compose config` output the tests read.
type composeFile struct {
	Services map[string]struct {
		Image         string
		ContainerName string `yaml:"container_name"`
		User          string
		GroupAdd      []string `yaml:"group_add"`
		ReadOnly      bool     `yaml:"read_only"`
		CapDrop       []string `yaml:"cap_drop"`
		SecurityOpt   []string `yaml:"security_opt"`
		Environment   map[string]string
		Volumes       []string
		Networks      map[string]any
		Labels        map[string]string
		Ports         []string
	}
	Networks map[string]struct {
		Name     string
		Internal bool
		Labels   map[string]string
	}
	Volumes map[string]struct {
		Name   string
		Labels map[string]string
	}
}

// composeConfig runs `docker-compose <files> config` with env and decodes the result.
func composeConfig(t *testing.T, env []string, files ...string) composeFile {
	t.Helper()
	need(t, "docker-compose")
	var args []string
	for _, f := range files {
		args = append(args, "-f", f)
	}
	out, err := command(t, env, "docker-compose", append(args, "config")...)
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var cf composeFile
	if err := yaml.Unmarshal([]byte(out), &cf); err != nil {
		t.Fatalf("decoding docker-compose config: %v\n%s", err, out)
	}
	return cf
}

func TestComposeConfig(t *testing.T) {
	cf := composeConfig(t, settings, "deploy/compose.yaml")
	proxy := cf.Services["docker-socket-proxy"]
	manager := cf.Services["postgrest-manager"]
	policy := filepath.Join(root(t), "policy.yaml")

	checks := []struct {
		name      string
		got, want any
	}{
		{"proxy-user-is-not-root", proxy.User, "65532:65532"},
		{"proxy-gets-the-socket-group", proxy.GroupAdd, []string{"105"}},
		{"proxy-read-only", proxy.ReadOnly, true},
		{"proxy-drops-all-capabilities", proxy.CapDrop, []string{"ALL"}},
		{"proxy-no-new-privileges", proxy.SecurityOpt, []string{"no-new-privileges:true"}},
		{"proxy-mounts-socket-and-policy-read-only", proxy.Volumes, []string{
			"/var/run/docker.sock:/var/run/docker.sock:ro",
			policy + ":/etc/sockpin/policy.yaml:ro"}},
		{"proxy-only-on-its-own-network", keys(proxy.Networks), []string{"docker-api"}},
		{"proxy-listens-for-the-manager", proxy.Environment["SOCKPIN_LISTEN"],
			"tcp://0.0.0.0:2375"},
		{"proxy-network-has-no-route-out", cf.Networks["docker-api"].Internal, true},
		{"proxy-publishes-nothing", len(proxy.Ports), 0},
		{"manager-user", manager.User, "1001:1001"},
		{"manager-read-only", manager.ReadOnly, true},
		{"manager-drops-all-capabilities", manager.CapDrop, []string{"ALL"}},
		{"manager-no-new-privileges", manager.SecurityOpt,
			[]string{"no-new-privileges:true"}},
		{"manager-networks", keys(manager.Networks),
			[]string{"docker-api", "launchdb-internal"}},
		{"manager-reaches-docker-through-the-proxy", manager.Environment["DOCKER_HOST"],
			"tcp://docker-socket-proxy:2375"},
		{"manager-container-name", manager.ContainerName, "launchdb-postgrest-manager"},
		{"manager-database-as-launchdb", manager.Environment["PLATFORM_DB_DSN"],
			"postgres://postgrest_manager_ro:secret@pgbouncer:6432/platform"},
		{"manager-config-volume", manager.Volumes,
			[]string{"postgrest-projects:/etc/postgrest/projects:rw"}},
		{"config-volume-named-explicitly", cf.Volumes["postgrest-projects"].Name,
			"launchdb_postgrest-projects"},
		{"tenant-network-named-explicitly", cf.Networks["launchdb-internal"].Name,
			"launchdb-internal"},
		{"pgbouncer-label", cf.Services["pgbouncer"].Labels["io.launchdb.role"], "pgbouncer"},
		{"pgbouncer-container-name", cf.Services["pgbouncer"].ContainerName,
			"launchdb-pgbouncer"},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}

	// The Node manager's variables (spec 2.1) keep their names.
	for _, name := range []string{"PORT", "INTERNAL_API_KEY", "PLATFORM_DB_DSN",
		"LAUNCHDB_MASTER_KEY", "DOCKER_HOST", "DOMAIN"} {
		if _, ok := manager.Environment[name]; !ok {
			t.Errorf("manager environment lacks %s", name)
		}
	}
	// Only the manager shares the proxy's network.
	for name, svc := range cf.Services {
		if _, ok := svc.Networks["docker-api"]; ok && name != "docker-socket-proxy" &&
			name != "postgrest-manager" {
			t.Errorf("service %s is on the proxy's network", name)
		}
	}
}

// TestComposeAgreesWithPolicy checks that the names policy.yaml pins are the ones the
// compose file creates.
func TestComposeAgreesWithPolicy(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Create []struct {
			Image   []string
			Network []string
			Binds   []string
		}
		Groups map[string]struct {
			Labels map[string]any
		}
	}
	if err := yaml.Unmarshal(data, &policy); err != nil {
		t.Fatal(err)
	}
	cf := composeConfig(t, settings, "deploy/compose.yaml")
	rule := policy.Create[0]
	if want := []string{cf.Networks["launchdb-internal"].Name}; !slices.Equal(rule.Network, want) {
		t.Errorf("policy networks %q, compose network %q", rule.Network, want)
	}
	bind := cf.Volumes["postgrest-projects"].Name + ":/etc/postgrest/projects:ro"
	if !slices.Equal(rule.Binds, []string{bind}) {
		t.Errorf("policy binds %q, compose volume gives %q", rule.Binds, bind)
	}
	if got := policy.Groups["pgbouncer"].Labels["io.launchdb.role"]; got !=
		cf.Services["pgbouncer"].Labels["io.launchdb.role"] {
		t.Errorf("policy pgbouncer label %v, compose label %q", got,
			cf.Services["pgbouncer"].Labels["io.launchdb.role"])
	}
}

func TestComposeRefusesMissingSettings(t *testing.T) {
	need(t, "docker-compose")
	for _, missing := range settings {
		name, _, _ := strings.Cut(missing, "=")
		t.Run(strings.ToLower(strings.ReplaceAll(name, "_", "-")), func(t *testing.T) {
			env := []string{name + "="}
			for _, s := range settings {
				if s != missing {
					env = append(env, s)
				}
			}
			out, err := command(t, env, "docker-compose", "-f", "deploy/compose.yaml", "config")
			if err == nil || !strings.Contains(out, "set "+name) {
				t.Errorf("config without %s: got %v %q, want a failure naming it", name, err, out)
			}
		})
	}
}

// TestComposeDemoKeepsNames checks that the demo's additions keep the compose file's
// names and settings: Compose replaces, not merges, a network or volume defined twice.
func TestComposeDemoKeepsNames(t *testing.T) {
	env := append(slices.Clone(settings), "SOCKPIN_DEMO_RUN=r", "SOCKPIN_DEMO_DSN=d",
		"SOCKPIN_DEMO_DB_SOCKET=/s", "SOCKPIN_DEMO_PGBOUNCER_IMAGE=i", "SOCKPIN_DEMO_DIR=/d",
		"SOCKPIN_DEMO_EXTRA_LABEL=sockpin.test.run=x")
	base := composeConfig(t, settings, "deploy/compose.yaml")
	demo := composeConfig(t, env, "deploy/compose.yaml", "deploy/demo/compose.yaml")
	for name, n := range base.Networks {
		got := demo.Networks[name]
		if got.Name != n.Name || got.Internal != n.Internal {
			t.Errorf("network %s: demo has %+v, compose.yaml %+v", name, got, n)
		}
		if got.Labels["sockpin.demo.run"] != "r" || got.Labels["sockpin.test.run"] != "x" {
			t.Errorf("network %s: labels %v, want the demo's and the extra one", name,
				got.Labels)
		}
	}
	for name, v := range base.Volumes {
		if got := demo.Volumes[name]; got.Name != v.Name || got.Labels["sockpin.demo.run"] != "r" {
			t.Errorf("volume %s: demo has %+v, compose.yaml %+v", name, got, v)
		}
	}
	for name, s := range demo.Services {
		if s.Labels["sockpin.demo.run"] != "r" || s.Labels["sockpin.test.run"] != "x" {
			t.Errorf("service %s: labels %v, want the demo's and the extra one", name, s.Labels)
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return slices.Equal(as, bs)
	}
	return a == b
}
