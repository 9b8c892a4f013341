package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// wantWholeOrGone checks that project id is either whole (running container, its config
// file, exactly one PgBouncer line) or gone (none of them), and returns which.
func (h *harness) wantWholeOrGone(id string) string {
	h.t.Helper()
	c, hasContainer := h.docker.container(ContainerName(id))
	_, hasConfig := h.configFile(id)
	lines := len(h.docker.databaseLines(id))
	switch {
	case !hasContainer && !hasConfig && lines == 0:
		return "gone"
	case hasContainer && c.running && hasConfig && lines == 1:
		return "whole"
	}
	h.t.Errorf("project %s is half there: container %v (running %v), config file %v, "+
		"%d PgBouncer lines", id, hasContainer, c.running, hasConfig, lines)
	return "half"
}

// TestReconcileAfterCrashInSpawn builds, for each point where a spawn can be cut off
// (the order is: pending file, config file, PgBouncer line, create, start, ready), what the
// crash leaves, and checks that start-up reconciliation leaves the project whole or gone.
func TestReconcileAfterCrashInSpawn(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		crash func(h *harness)
		want  string
	}{
		{"after-config-file", func(h *harness) {
			h.markPending(testID)
			h.writeConfig(testID)
		}, "gone"},
		{"after-pgbouncer-line", func(h *harness) {
			h.markPending(testID)
			h.writeConfig(testID)
			h.addLine(testID)
		}, "gone"},
		{"after-create-before-start", func(h *harness) {
			h.markPending(testID)
			h.writeConfig(testID)
			h.addLine(testID)
			h.createContainer(testID)
		}, "gone"},
		{"after-start-before-ready", func(h *harness) {
			h.markPending(testID)
			h.writeConfig(testID)
			h.addLine(testID)
			h.createContainer(testID)
			if err := h.docker.ContainerStart(ctx, ContainerName(testID),
				containerStartOptions); err != nil {
				h.t.Fatal(err)
			}
		}, "whole"},
		{"destroy-after-container-removed", func(h *harness) {
			h.seed(testID, "jwt", "pw")
			if _, err := h.svc.Spawn(ctx, testID); err != nil {
				h.t.Fatal(err)
			}
			h.markPending(testID)
			if _, err := h.svc.removeContainer(ctx, ContainerName(testID)); err != nil {
				h.t.Fatal(err)
			}
		}, "gone"},
		{"after-pending-file", func(h *harness) {
			h.markPending(testID)
		}, "gone"},
		{"stopped-container-without-config", func(h *harness) {
			h.addLine(testID)
			h.createContainer(testID)
			if err := h.docker.ContainerStart(ctx, ContainerName(testID),
				containerStartOptions); err != nil {
				h.t.Fatal(err)
			}
			if err := h.docker.ContainerStop(ctx, ContainerName(testID),
				containerStopOptions); err != nil {
				h.t.Fatal(err)
			}
		}, "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.crash(h)
			reloads := h.docker.count("kill SIGHUP")
			if err := h.svc.Reconcile(ctx); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if got := h.wantWholeOrGone(testID); got != tt.want {
				t.Errorf("after reconcile: project is %s, want %s", got, tt.want)
			}
			if h.docker.count("kill SIGHUP") == reloads {
				t.Error("PgBouncer not reloaded by reconcile")
			}
			leftovers, _ := filepath.Glob(filepath.Join(h.svc.cfg.ConfigDir, ".*"))
			if len(leftovers) != 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

// TestSpawnUndoWithoutDockerLeavesProjectWhole fails a spawn at readiness and the removal
// of its container: the line and config stay with the container, so what is left is a
// whole project that reconciliation keeps and destroy removes.
func TestSpawnUndoWithoutDockerLeavesProjectWhole(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	h.setNotReady(ContainerName(testID), true)
	h.docker.setFail("remove", errors.New("Cannot connect to the Docker daemon"))
	_, err := h.svc.Spawn(ctx, testID)
	wantStatus(t, err, 500, "spawn_failed")
	if got := h.wantWholeOrGone(testID); got != "whole" {
		t.Errorf("after the failed spawn: project is %s, want whole", got)
	}
	if err := h.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.wantWholeOrGone(testID); got != "whole" {
		t.Errorf("after reconcile: project is %s, want whole", got)
	}
	h.docker.setFail("remove", nil)
	if _, err := h.svc.Destroy(ctx, testID); err != nil {
		t.Fatal(err)
	}
	if got := h.wantWholeOrGone(testID); got != "gone" {
		t.Errorf("after destroy: project is %s, want gone", got)
	}
}

func (h *harness) markPending(id string) {
	h.t.Helper()
	if err := h.svc.markPending(id); err != nil {
		h.t.Fatal(err)
	}
}

// TestReconcileLeavesWhatItDidNotStart: a config file and PgBouncer line without a visible
// container and without a pending operation were not left by this manager (a container
// the proxy does not show, created before it); start-up keeps them, so that project keeps
// being served.
func TestReconcileLeavesWhatItDidNotStart(t *testing.T) {
	h := newHarness(t)
	h.writeConfig(testID)
	h.addLine(testID)
	if err := h.svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.configFile(testID); !ok {
		t.Error("config file removed")
	}
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Errorf("PgBouncer lines: got %q, want the one line kept", got)
	}
}

// TestDestroyLeftUnfinishedIsFinishedAtStartUp: a destroy whose PgBouncer edit fails
// answers 500 and leaves its pending file; once PgBouncer answers, start-up removes the
// line and nothing is left.
func TestDestroyLeftUnfinishedIsFinishedAtStartUp(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	if _, err := h.svc.Spawn(ctx, testID); err != nil {
		t.Fatal(err)
	}
	h.docker.setFail("exec", errors.New("container launchdb-pgbouncer is not running"))
	_, err := h.svc.Destroy(ctx, testID)
	wantStatus(t, err, 500, "destroy_failed")
	if got := h.docker.databaseLines(testID); len(got) != 1 {
		t.Fatalf("PgBouncer lines after the failed destroy: got %q, want the line still there", got)
	}
	h.docker.setFail("exec", nil)
	if err := h.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.wantWholeOrGone(testID); got != "gone" {
		t.Errorf("after reconcile: project is %s, want gone", got)
	}
	if _, err := os.Stat(h.svc.pendingPath(testID)); !os.IsNotExist(err) {
		t.Errorf("pending file: got %v, want it removed", err)
	}
}

func (h *harness) writeConfig(id string) {
	h.t.Helper()
	cfg := BuildPostgRESTConfig(id, id, ProjectSecrets{JWTSecret: "jwt", DBPassword: "pw"})
	if err := os.WriteFile(h.svc.configPath(id), cfg, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) addLine(id string) {
	h.t.Helper()
	if _, err := h.svc.editPgBouncer(context.Background(), PgBouncerAdd, id, id); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) createContainer(id string) {
	h.t.Helper()
	cfg, host := h.svc.containerSpec(id, "launchdb-internal")
	if _, err := h.docker.ContainerCreate(context.Background(), cfg, host, nil, nil,
		ContainerName(id)); err != nil {
		h.t.Fatal(err)
	}
}

var (
	containerStartOptions = container.StartOptions{}
	containerStopOptions  = container.StopOptions{}
)

// TestRecoverWaitsOnlyAfterUncleanStop checks the start-up wait for calls a crashed process
// left in flight: none after a clean stop, CrashRecoveryWait when the running marker of
// the previous process is still there.
func TestRecoverWaitsOnlyAfterUncleanStop(t *testing.T) {
	h := newHarness(t)
	h.svc.cfg.CrashRecoveryWait = 300 * time.Millisecond
	ctx := context.Background()
	start := time.Now()
	if err := h.svc.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= h.svc.cfg.CrashRecoveryWait {
		t.Errorf("first start waited %v, want no wait", took)
	}
	// No Stopped: the process "crashed".
	start = time.Now()
	if err := h.svc.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < h.svc.cfg.CrashRecoveryWait {
		t.Errorf("start after a crash waited %v, want %v", took, h.svc.cfg.CrashRecoveryWait)
	}
	h.svc.Stopped()
	start = time.Now()
	if err := h.svc.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= h.svc.cfg.CrashRecoveryWait {
		t.Errorf("start after a clean stop waited %v, want no wait", took)
	}
}

// TestOperationsWaitForStartUpReconcile: while the start-up reconcile runs in the
// background (here held by the wait after an unclean stop), a spawn waits for it and then
// succeeds; one whose caller gives up first fails naming the reconcile, having changed
// nothing.
func TestOperationsWaitForStartUpReconcile(t *testing.T) {
	h := newHarness(t)
	h.seed(testID, "jwt", "pw")
	h.svc.cfg.CrashRecoveryWait = 500 * time.Millisecond
	if err := os.WriteFile(filepath.Join(h.svc.cfg.ConfigDir, runningMarker), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	recovered := h.svc.RecoverInBackground(context.Background())

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := h.svc.Spawn(short, testID)
	wantStatus(t, err, 500, "spawn_failed")
	if err == nil || !strings.Contains(err.Error(), "start-up reconciliation is still running") {
		t.Errorf("got %v, want it to name the reconcile", err)
	}
	if h.docker.count("create") != 0 {
		t.Error("the spawn that gave up created a container")
	}

	res, err := h.svc.Spawn(context.Background(), testID)
	if err != nil || res.Status != StatusRunning {
		t.Fatalf("got %+v, %v; want a new running container", res, err)
	}
	if took := time.Since(start); took < h.svc.cfg.CrashRecoveryWait {
		t.Errorf("spawn finished %v after start-up, before the reconcile (%v)", took,
			h.svc.cfg.CrashRecoveryWait)
	}
	select {
	case err := <-recovered:
		if err != nil {
			t.Errorf("reconcile: %v", err)
		}
	default:
		t.Error("the spawn ran before the reconcile had finished")
	}
}
