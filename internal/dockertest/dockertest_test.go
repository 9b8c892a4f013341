package dockertest

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name      string
		ci        string
		wantFatal bool
	}{
		{name: "ci-fails", ci: "true", wantFatal: true},
		{name: "local-skips", ci: "", wantFatal: false},
		{name: "ci-false-skips", ci: "false", wantFatal: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := record(t, func(tb testing.TB) { Unavailable(tb, "no daemon") })
			if got := r.fatal != ""; got != tt.wantFatal {
				t.Errorf("fatal: got %v (%q), want %v", got, r.fatal, tt.wantFatal)
			}
			if got := r.skip != ""; got == tt.wantFatal {
				t.Errorf("skip: got %v (%q), want %v", got, r.skip, !tt.wantFatal)
			}
			if msg := r.fatal + r.skip; !strings.Contains(msg, "no daemon") {
				t.Errorf("message: got %q, want it to contain %q", msg, "no daemon")
			}
		})
	}
}

func TestClientUnreachableDaemon(t *testing.T) {
	t.Setenv("CI", "true")
	missing := filepath.Join(t.TempDir(), "docker.sock")
	r := record(t, func(tb testing.TB) { clientFor(tb, missing) })
	if !strings.Contains(r.fatal, "Docker daemon not reachable on "+missing) {
		t.Errorf("fatal: got %q, want it to name the unreachable socket", r.fatal)
	}
}

func TestClientPing(t *testing.T) {
	cli := Client(t)
	if got := cli.ClientVersion(); got == "" {
		t.Errorf("negotiated API version: got %q, want a version", got)
	}
}

func TestRunIDAndLabels(t *testing.T) {
	if got, again := RunID(), RunID(); got != again {
		t.Errorf("RunID: got %q then %q, want one ID per process", got, again)
	}
	if got := RunID(); !regexp.MustCompile(`^[a-z0-9]{12}$`).MatchString(got) {
		t.Errorf("RunID: got %q, want 12 characters of [a-z0-9]", got)
	}
	labels := Labels()
	labels["x"] = "y"
	if got := Labels(); len(got) != 1 || got[RunLabel] != RunID() {
		t.Errorf("Labels: got %v, want a fresh map {%s: %s}", got, RunLabel, RunID())
	}
}

func TestProjectID(t *testing.T) {
	pattern := regexp.MustCompile(`^proj_[a-z0-9]{16}$`)
	a, b := ProjectID(), ProjectID()
	for _, id := range []string{a, b} {
		if !pattern.MatchString(id) {
			t.Errorf("ProjectID: got %q, want a match of %s", id, pattern)
		}
	}
	if a == b {
		t.Errorf("ProjectID: got %q twice, want distinct IDs", a)
	}
}

func TestOwnership(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		ours   bool
		want   string
	}{
		{name: "no-labels", labels: nil, want: "no " + RunLabel + " label"},
		{name: "this-run", labels: Labels(), ours: true, want: "earlier by this test run"},
		{
			name:   "other-run",
			labels: map[string]string{RunLabel: "someoneelse1"},
			want:   "another test process",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ours(tt.labels); got != tt.ours {
				t.Errorf("ours: got %v, want %v", got, tt.ours)
			}
			if got := ownership(tt.labels); !strings.Contains(got, tt.want) {
				t.Errorf("ownership: got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
