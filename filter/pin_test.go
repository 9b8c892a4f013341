package filter

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/launchdb/sockpin/manager"
)

// TestPolicyPinsManagerExec checks that the default policy allows exactly
// the PgBouncer commands the manager runs, and refuses the same command
// with one character changed.
func TestPolicyPinsManagerExec(t *testing.T) {
	p, err := Load("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const id = "proj_0123456789abcdef"
	f := DefaultFixtures()
	decide := func(argv []string) *Decision {
		t.Helper()
		body, _ := json.Marshal(container.ExecOptions{
			User: "root", AttachStdout: true, AttachStderr: true, Cmd: argv})
		call, d := p.Classify("POST", "/v1.41/containers/launchdb-pgbouncer/exec")
		if d != nil {
			t.Fatalf("classify: %s", d.Message())
		}
		d, err := p.Decide(context.Background(), call,
			Body{ContentType: "application/json", Data: body}, f)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, op := range []string{"add", "remove"} {
		argv := manager.PgBouncerArgv(op, id, id, "/etc/pgbouncer/pgbouncer.ini")
		if d := decide(argv); !d.Allowed {
			t.Errorf("%s: got refusal %q, want the manager's command allowed "+
				"(policy.yaml must pin manager/pgbouncer.sh verbatim)", op, d.Message())
		}
		argv[2] += " "
		if d := decide(argv); d.Allowed {
			t.Errorf("%s: a changed script was allowed, want refused", op)
		}
	}
	bad := manager.PgBouncerArgv("add", id+"'", id, "/etc/pgbouncer/pgbouncer.ini")
	if d := decide(bad); d.Allowed {
		t.Errorf("a project ID outside the pattern was allowed, want refused")
	}
}
