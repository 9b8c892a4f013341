package manager

import (
	"strings"
	"testing"
	"time"
)

func envFrom(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestConfigFromEnvDefaults(t *testing.T) {
	cfg, err := ConfigFromEnv(envFrom(map[string]string{
		"INTERNAL_API_KEY":    "k",
		"PLATFORM_DB_DSN":     "postgres://postgrest_manager_ro:secret@pgbouncer:6432/platform",
		"LAUNCHDB_MASTER_KEY": vectorKey + "\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"port", cfg.Port, 9000},
		{"docker-host", cfg.DockerHost, "tcp://docker-socket-proxy:2375"},
		{"image", cfg.Image, "launchdb/postgrest:v1"},
		{"config-dir", cfg.ConfigDir, "/etc/postgrest/projects"},
		{"config-volume", cfg.ConfigVolume, "launchdb_postgrest-projects"},
		{"network", cfg.Network, ""},
		{"pgbouncer-container", cfg.PgBouncerContainer, "launchdb-pgbouncer"},
		{"pgbouncer-ini", cfg.PgBouncerINI, "/etc/pgbouncer/pgbouncer.ini"},
		{"spawn-ready-timeout", cfg.SpawnReadyTimeout, 20 * time.Second},
		{"shutdown-timeout", cfg.ShutdownTimeout, 30 * time.Second},
		{"domain", cfg.Domain, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigFromEnvErrors(t *testing.T) {
	valid := map[string]string{
		"INTERNAL_API_KEY":    "k",
		"PLATFORM_DB_DSN":     "postgres://u:topsecret@h/db",
		"LAUNCHDB_MASTER_KEY": vectorKey,
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    []string
		notWant []string
	}{
		{"all-required-missing", map[string]string{}, []string{
			"missing required environment variables: INTERNAL_API_KEY, PLATFORM_DB_DSN, LAUNCHDB_MASTER_KEY"}, nil},
		{"every-malformed-value-listed", map[string]string{
			"PORT": "0", "LAUNCHDB_MASTER_KEY": "c2hvcnQ=", "DOCKER_HOST": "docker:2375",
			"POSTGREST_IMAGE": "bad image!", "POSTGREST_CONFIG_DIR": "relative",
			"POSTGREST_CONFIG_VOLUME": "a:b", "PGBOUNCER_CONTAINER": "bad name",
			"PGBOUNCER_INI": "/etc/../x.ini", "SPAWN_READY_TIMEOUT": "soon",
			"SHUTDOWN_TIMEOUT": "-1s",
		}, []string{
			"missing required environment variables: INTERNAL_API_KEY, PLATFORM_DB_DSN",
			"PORT:", "LAUNCHDB_MASTER_KEY: decodes to 5 bytes", "DOCKER_HOST:", "POSTGREST_IMAGE:",
			"POSTGREST_CONFIG_DIR:", "POSTGREST_CONFIG_VOLUME:", "PGBOUNCER_CONTAINER:",
			"PGBOUNCER_INI:", "SPAWN_READY_TIMEOUT:", "SHUTDOWN_TIMEOUT:",
		}, []string{"c2hvcnQ"}},
		{"malformed-dsn-not-echoed", map[string]string{
			"INTERNAL_API_KEY": "k", "LAUNCHDB_MASTER_KEY": vectorKey,
			"PLATFORM_DB_DSN": "postgres://u:topsecret@h:notaport/db",
		}, []string{"PLATFORM_DB_DSN: not a valid PostgreSQL connection string"},
			[]string{"topsecret"}},
		{"unix-docker-host-accepted-but-empty-path-refused", merge(valid,
			map[string]string{"DOCKER_HOST": "unix://"}),
			[]string{"DOCKER_HOST: want unix:///path"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConfigFromEnv(envFrom(tt.env))
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(err.Error(), nw) {
					t.Errorf("error contains %q:\n%v", nw, err)
				}
			}
		})
	}
}

func TestConfigFromEnvAcceptsAlternatives(t *testing.T) {
	env := map[string]string{
		"INTERNAL_API_KEY":    "k",
		"PLATFORM_DB_DSN":     "host=/run/postgresql dbname=platform user=ro",
		"LAUNCHDB_MASTER_KEY": `"` + vectorKey + `"`,
		"DOCKER_HOST":         "unix:///run/sockpin/docker.sock",
		"SPAWN_READY_TIMEOUT": "15",
		"POSTGREST_NETWORK":   "launchdb-internal",
	}
	cfg, err := ConfigFromEnv(envFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SpawnReadyTimeout != 15*time.Second {
		t.Errorf("SPAWN_READY_TIMEOUT=15: got %v, want 15s", cfg.SpawnReadyTimeout)
	}
}

func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

// TestDockerHostDefaultPort: a tcp:// DOCKER_HOST without a port gets Docker's plain-HTTP
// port, as the Node manager's client gave it; one with a path is refused.
func TestDockerHostDefaultPort(t *testing.T) {
	for host, want := range map[string]string{
		"tcp://docker-socket-proxy":       "tcp://docker-socket-proxy:2375",
		"tcp://10.0.0.5:2376":             "tcp://10.0.0.5:2376",
		"tcp://[::1]":                     "tcp://[::1]:2375",
		"unix:///run/sockpin/docker.sock": "unix:///run/sockpin/docker.sock",
	} {
		got, err := checkDockerHost(host)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", host, got, err, want)
		}
	}
	for _, host := range []string{"tcp://", "tcp://proxy/v1.41", "http://proxy:2375"} {
		if got, err := checkDockerHost(host); err == nil {
			t.Errorf("%s: got %q, want an error", host, got)
		}
	}
}
