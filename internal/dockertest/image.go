package dockertest

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/launchdb/sockpin/internal/standin"
)

// PostgRESTImage is the image name the manager uses by default.
const PostgRESTImage = "launchdb/postgrest:v1"

// BusyboxPath is the static BusyBox (Debian's busybox-static) copied into
// images that need a shell.
const BusyboxPath = standin.BusyboxPath

// StandinImage creates the PostgREST stand-in image (the program in
// testdata/standin: GET / on :3000, `curl -f URL` for the healthcheck) as
// tag, for example PostgRESTImage: /app and /usr/bin/curl are the program,
// ENTRYPOINT ["/app", "serve"] takes the config path as the real image's
// entrypoint does, EXPOSE 3000. The tag is removed on cleanup. A tag that
// exists without this run's label fails the test; one this run already
// made is reused and left to the cleanup of whoever made it.
//
// Containers inherit the image's labels, so containers made from it carry
// the run label even when the code under test creates them.
func StandinImage(t testing.TB, cli *client.Client, tag string) string {
	t.Helper()
	return importImage(t, cli, tag, standin.PostgREST(readFile(t, Standin(t))))
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// Standin returns the path of the stand-in program, a static linux binary
// built once per test process.
func Standin(t testing.TB) string {
	t.Helper()
	return goBuild(t, standin.Program, "standin")
}

// BuildBinary builds ./cmd/<pkg> of this module (CGO_ENABLED=0) once per
// test process and returns the binary's path. A pkg containing a slash is
// taken as a package path relative to the module root.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	path := "./cmd/" + pkg
	if strings.Contains(pkg, "/") {
		path = pkg
	}
	return goBuild(t, path, filepath.Base(path))
}

func goBuild(t testing.TB, pkg, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if out, ok := buildCache[pkg]; ok {
		return out
	}
	// One directory per build keeps equal base names apart.
	dir := filepath.Join(processDir(t), strconv.Itoa(len(buildCache)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating build directory: %v", err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	buildCache[pkg] = out
	return out
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return data
}

// staticBusybox returns the bytes of BusyboxPath, which must be a statically
// linked binary to run in an image built FROM scratch.
func staticBusybox(t testing.TB) []byte {
	t.Helper()
	f, err := elf.Open(BusyboxPath)
	if err != nil {
		Unavailable(t, "static BusyBox not usable at %s (install busybox-static): %v",
			BusyboxPath, err)
	}
	defer f.Close()
	if f.Section(".interp") != nil {
		Unavailable(t, "%s is dynamically linked; install Debian's busybox-static",
			BusyboxPath)
	}
	return readFile(t, BusyboxPath)
}

// importImage imports img as a one-layer image tagged tag, with the run
// label, and removes the tag on cleanup. Importing skips the builder: no intermediate containers or
// images, and a fraction of a second. It returns the image ID.
func importImage(t testing.TB, cli *client.Client, tag string, img standin.Image) string {
	t.Helper()
	c, cancel := callCtx()
	defer cancel()
	existing, err := cli.ImageInspect(c, tag)
	switch {
	case err == nil && existing.Config != nil && ours(existing.Config.Labels):
		return existing.ID
	case err == nil:
		var labels map[string]string
		if existing.Config != nil {
			labels = existing.Config.Labels
		}
		t.Fatalf("image %q already exists and %s; refusing to touch it "+
			"(remove it with `docker rmi %s` if it is a leftover)", tag, ownership(labels), tag)
	case !cerrdefs.IsNotFound(err):
		t.Fatalf("inspecting image %q: %v", tag, err)
	}

	t.Cleanup(func() { removeImage(t, cli, tag) })
	id, err := standin.Import(c, cli, tag, img, Labels())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func removeImage(t testing.TB, cli *client.Client, tag string) {
	t.Helper()
	c, cancel := callCtx()
	defer cancel()
	_, err := cli.ImageRemove(c, tag, image.RemoveOptions{PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("removing image %q: %v", tag, err)
	}
}
