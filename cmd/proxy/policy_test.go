package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestPolicyCheck(t *testing.T) {
	out, _, err := runCmd(t, nil, "policy", "check", "../../policy.yaml")
	if err != nil || !strings.Contains(out, "policy.yaml: ok: system calls ping and version; 2 container group(s)") {
		t.Fatalf("got %v %q, want ok with a summary", err, out)
	}
	out, _, err = runCmd(t, nil, "policy", "check", "../../filter/testdata/policies/unknown-key.yaml")
	if err == nil || !strings.Contains(out, `unknown-key.yaml:6:5: error: unknown key "lables"`) {
		t.Fatalf("got %v %q, want an error with line and column", err, out)
	}
	out, _, err = runCmd(t, nil, "policy", "check", "../../filter/testdata/policies/warn-unanchored.yaml")
	if err != nil || !strings.Contains(out, "6:28: warning:") || !strings.Contains(out, ": ok: ") {
		t.Fatalf("got %v %q, want ok with a warning", err, out)
	}
}

func TestPolicyExplain(t *testing.T) {
	out, _, err := runCmd(t, nil, "policy", "explain", "../../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"containers may be created only from docker.io/launchdb/postgrest:v1",
		"killed with SIGHUP only",
		"Inspect answers hide the values of their environment",
		"so also one created on the daemon directly, not through the proxy (exec_start_pinned is off)",
		"container.archive",
		"volume.list",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("explanation lacks %q", want)
		}
	}
	md, _, err := runCmd(t, nil, "policy", "explain", "-markdown", "../../policy.yaml")
	if err != nil || !strings.Contains(md, "\n## Container create\n") {
		t.Errorf("got %v, want Markdown headings", err)
	}
}

func TestPolicyTest(t *testing.T) {
	for _, cases := range []string{"../../testdata/redteam/cases.jsonl", "../../testdata/redteam/sockpin-cases.jsonl"} {
		out, _, err := runCmd(t, nil, "policy", "test", "../../policy.yaml", cases)
		if err != nil || !strings.Contains(out, " differ\n") || strings.Contains(out, "FAIL") {
			t.Errorf("%s: got %v, want every case as expected:\n%s", cases, err, out)
		}
	}
	// A case whose expectation is wrong is reported and fails the run.
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong.jsonl")
	line := `{"id":"wrong","class":"x","method":"GET","path":"/info","headers":{},"body":"","expect":"allow","why":"wrong on purpose"}`
	if err := os.WriteFile(wrong, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, nil, "policy", "test", "../../policy.yaml", wrong)
	if err == nil || !strings.Contains(out, "FAIL wrong") || !strings.Contains(out, "system.info is never allowed") {
		t.Errorf("got %v %q, want the differing case reported with its reason", err, out)
	}
}

func TestPolicyTestFixtures(t *testing.T) {
	dir := t.TempDir()
	fx := filepath.Join(dir, "fixtures.yaml")
	os.WriteFile(fx, []byte("containers:\n  - name: postgrest-proj_2222222222222222\n    labels:\n"+
		"      io.launchdb.role: postgrest\n      io.launchdb.project: proj_2222222222222222\n"), 0o600)
	cases := filepath.Join(dir, "cases.jsonl")
	os.WriteFile(cases, []byte(
		`{"id":"stop-known","class":"x","method":"POST","path":"/containers/postgrest-proj_2222222222222222/stop","expect":"allow"}`+"\n"+
			`{"id":"stop-unknown","class":"x","method":"POST","path":"/containers/postgrest-proj_0123456789abcdef/stop","expect":"allow"}`+"\n"), 0o600)
	out, _, _ := runCmd(t, nil, "policy", "test", "-fixtures", fx, "../../policy.yaml", cases)
	if !strings.Contains(out, "ok   stop-known") || !strings.Contains(out, "No such container") {
		t.Errorf("got %q, want the fixture container found and the other unknown", out)
	}
}

func TestPolicyMigrate(t *testing.T) {
	env := map[string]string{"CONTAINERS": "1", "POST": "1", "EXEC": "1", "NETWORKS": "1", "VOLUMES": "1"}
	out, _, err := runCmd(t, env, "policy", "migrate", "IMAGES=1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"creating privileged containers with / mounted", "never forwards these sections",
		"VOLUMES", "exec:", "create:", "images:"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrated policy lacks %q", want)
		}
	}
	file := filepath.Join(t.TempDir(), "migrated.yaml")
	os.WriteFile(file, []byte(out), 0o600)
	if check, _, err := runCmd(t, nil, "policy", "check", file); err != nil {
		t.Errorf("the migrated policy does not check: %v\n%s", err, check)
	}
	if _, _, err := runCmd(t, nil, "policy", "migrate", "NOPE=1"); err == nil {
		t.Error("an unknown variable was accepted")
	}
}

func TestWrongCommandLinesSayWhy(t *testing.T) {
	for _, args := range [][]string{
		{"policy", "migrate", "FOO=1"},
		{"policy", "frobnicate"},
		{"policy", "check"},
	} {
		_, _, err := runCmd(t, nil, args...)
		var stderr bytes.Buffer
		if code := exitCode(err, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "proxy: ") ||
			len(strings.TrimSpace(stderr.String())) < len("proxy: x") {
			t.Errorf("%v: got exit %d and %q, want 2 and a message saying what is wrong", args, code, stderr.String())
		}
	}
}

// TestWrongCommandLineMessages: the message names the mistake in the
// user's terms.
func TestWrongCommandLineMessages(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "explain", "../../policy.yaml", "-markdown"},
			`policy explain: flags go before the arguments, and "-markdown" came after`},
		{[]string{"-listen", "127.0.0.1:2375"},
			`-listen: address "127.0.0.1:2375": want tcp://host:port or unix:///absolute/path`},
	} {
		_, _, err := runCmd(t, nil, tt.args...)
		var stderr bytes.Buffer
		exitCode(err, &stderr)
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: got %q, want it to say %q", tt.args, stderr.String(), tt.want)
		}
	}
}

// TestHelpOnStdout: help asked for goes to stdout, where a pager reads it.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"policy", "-h"}, {"policy", "check", "-h"}, {"policy", "test", "-h"},
		{"health", "-h"},
	} {
		out, errOut, err := runCmd(t, nil, args...)
		var stderr bytes.Buffer
		if code := exitCode(err, &stderr); code != 0 || !strings.Contains(out, "Usage") || errOut != "" {
			t.Errorf("%v: got exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", args, code,
				clipOut(out), errOut)
		}
	}
}

func clipOut(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func TestCheckWarnsOfMigratePlaceholders(t *testing.T) {
	migrated, _, err := runCmd(t, nil, "policy", "migrate", "CONTAINERS=1", "POST=1", "EXEC=1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "migrated.yaml")
	if err := os.WriteFile(file, []byte(migrated), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, nil, "policy", "check", file)
	if err != nil || !strings.Contains(out, `warning: "CHANGE-ME/image:tag" is a placeholder of policy migrate`) {
		t.Errorf("got %v %q, want it to load with a warning for each placeholder", err, out)
	}
}
