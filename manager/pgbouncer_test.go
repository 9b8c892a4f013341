package manager

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPgBouncerArgvShape(t *testing.T) {
	got := PgBouncerArgv(PgBouncerAdd, testID, testID, "/etc/pgbouncer/pgbouncer.ini")
	want := []string{"sh", "-c", PgBouncerScript(), "sockpin-pgbouncer", "add", testID, testID,
		"/etc/pgbouncer/pgbouncer.ini"}
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("argv: got %q, want %q", got, want)
	}
	if strings.Contains(PgBouncerScript(), testID) || !strings.HasPrefix(PgBouncerScript(),
		"# sockpin") {
		t.Error("script is not the constant embedded text")
	}
}

// shells returns the POSIX shells on this machine the script must work with.
func shells(t *testing.T) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		found["busybox"] = []string{"/bin/busybox", "sh"}
	}
	if p, err := exec.LookPath("dash"); err == nil {
		found["dash"] = []string{p}
	}
	if len(found) == 0 {
		found["sh"] = []string{"sh"}
	}
	return found
}

const (
	otherID   = "proj_aaaaaaaaaaaaaaaa"
	iniHeader = "[databases]\nplatform = host=postgres port=5432 dbname=platform pool_mode=session\n"
	iniTail   = "\n[pgbouncer]\nlisten_port = 6432\n"
)

func lineFor(id string) string {
	return id + " = host=postgres port=5432 dbname=" + id + " pool_size=5 reserve_pool=2\n"
}

func TestPgBouncerScript(t *testing.T) {
	tests := []struct {
		name       string
		ini        string
		op, id, db string
		wantINI    string
		wantOut    string
		wantErr    string
	}{
		{"add-new-line-after-header", iniHeader + iniTail, "add", testID, testID,
			"[databases]\n" + lineFor(testID) + strings.TrimPrefix(iniHeader,
				"[databases]\n") + iniTail, "changed", ""},
		{"add-is-idempotent", "[databases]\n" + lineFor(testID) + iniTail, "add", testID, testID,
			"[databases]\n" + lineFor(testID) + iniTail, "unchanged", ""},
		{"add-collapses-duplicates",
			"[databases]\n" + lineFor(testID) + lineFor(otherID) + lineFor(testID) +
				testID + "=old\n" + iniTail, "add", testID, testID,
			"[databases]\n" + lineFor(testID) + lineFor(otherID) + iniTail, "changed", ""},
		{"add-keeps-line-where-it-is", "[databases]\n" + lineFor(otherID) + lineFor(testID) + iniTail,
			"add", testID, testID,
			"[databases]\n" + lineFor(otherID) + lineFor(testID) + iniTail, "unchanged", ""},
		{"add-moves-line-out-of-other-section", "[databases]\n" + lineFor(otherID) +
			"[pgbouncer]\n" + lineFor(testID) + "listen_port = 6432\n",
			"add", testID, testID,
			"[databases]\n" + lineFor(testID) + lineFor(otherID) + "[pgbouncer]\nlisten_port = 6432\n",
			"changed", ""},
		{"add-changed-line-replaced", "[databases]\n" + lineFor(otherID) +
			strings.Replace(lineFor(testID), "pool_size=5", "pool_size=9", 1) + iniTail,
			"add", testID, testID,
			"[databases]\n" + lineFor(testID) + lineFor(otherID) + iniTail, "changed", ""},
		{"add-keeps-last-line-without-newline", "[databases]\nlisten_port = 1", "add", testID,
			testID,
			"[databases]\n" + lineFor(testID) + "listen_port = 1\n", "changed", ""},
		{"remove-every-copy",
			"[databases]\n" + lineFor(testID) + lineFor(otherID) + testID + "=x\n" + testID +
				"\t = y\n" + iniTail,
			"remove", testID, testID, "[databases]\n" + lineFor(otherID) + iniTail, "changed", ""},
		{"remove-absent-is-unchanged", iniHeader + iniTail, "remove", testID, testID,
			iniHeader + iniTail, "unchanged", ""},
		{"remove-keeps-longer-names", "[databases]\n" + testID + "x = a\n", "remove", testID,
			testID,
			"[databases]\n" + testID + "x = a\n", "unchanged", ""},
		{"add-without-databases-section", "[pgbouncer]\n", "add", testID, testID, "[pgbouncer]\n",
			"", "no [databases] section"},
		{"injection-in-id-refused", iniHeader, "add", `x";id;"`, testID, iniHeader, "",
			"invalid project id"},
		{"injection-in-db-refused", iniHeader, "add", testID, "proj_0123456789abcde'", iniHeader,
			"", "invalid database name"},
		{"unknown-op-refused", iniHeader, "rm", testID, testID, iniHeader, "", "unknown operation"},
	}
	for shName, sh := range shells(t) {
		for _, tt := range tests {
			t.Run(shName+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				ini := filepath.Join(dir, "pgbouncer.ini")
				if err := os.WriteFile(ini, []byte(tt.ini), 0o644); err != nil {
					t.Fatal(err)
				}
				before := inode(t, ini)
				argv := PgBouncerArgv(tt.op, tt.id, tt.db, ini)
				argv = append(append([]string(nil), sh...), argv[1:]...)
				cmd := exec.Command(argv[0], argv[1:]...)
				cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(stderr.String(), tt.wantErr) {
						t.Errorf("got err %v stderr %q, want failure with %q", err, stderr.String(),
							tt.wantErr)
					}
				} else if err != nil {
					t.Fatalf("script failed: %v: %s", err, stderr.String())
				}
				if got := strings.TrimSpace(string(out)); got != tt.wantOut {
					t.Errorf("stdout: got %q, want %q", got, tt.wantOut)
				}
				got, _ := os.ReadFile(ini)
				if string(got) != tt.wantINI {
					t.Errorf("ini:\n%s\nwant:\n%s", got, tt.wantINI)
				}
				if inode(t, ini) != before {
					t.Error("ini was replaced (new inode); a single-file bind mount would break")
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 1 {
					t.Errorf("leftover files: got %d entries, want only the ini", len(entries))
				}
			})
		}
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}
