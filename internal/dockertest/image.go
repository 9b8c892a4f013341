package dockertest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// PostgRESTImage is the image name the manager uses by default.
const PostgRESTImage = "launchdb/postgrest:v1"

// BusyboxPath is the static BusyBox (Debian's busybox-static) copied into
// images that need a shell.
const BusyboxPath = "/bin/busybox"

// standinPkg is the stand-in program, relative to the module root.
const standinPkg = "./internal/dockertest/testdata/standin"

// containerPath is PATH inside the stand-in images; FROM scratch has none.
const containerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// standinDockerfile is the PostgREST stand-in: the real image's entrypoint
// takes the config path as its only argument, and its healthcheck runs curl.
const standinDockerfile = `FROM scratch
COPY standin /app
COPY standin /usr/bin/curl
ENV PATH=` + containerPath + `
EXPOSE 3000
ENTRYPOINT ["/app", "serve"]
`

// StandinImage builds the PostgREST stand-in image (the program in
// testdata/standin: GET / on :3000, `curl -f URL` for the healthcheck) and
// tags it tag, for example PostgRESTImage. The tag is removed on cleanup. A
// tag that exists without this run's label fails the test; one this run
// already built is reused and left to the cleanup of whoever built it.
func StandinImage(t testing.TB, cli *client.Client, tag string) string {
	t.Helper()
	files := map[string]contextFile{
		"Dockerfile": {data: []byte(standinDockerfile), mode: 0o644},
		"standin":    {data: readFile(t, Standin(t)), mode: 0o755},
	}
	return buildImage(t, cli, tag, files)
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// Standin returns the path of the stand-in program, a static linux binary
// built once per test process.
func Standin(t testing.TB) string {
	t.Helper()
	return goBuild(t, standinPkg, "standin")
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
	out := filepath.Join(processDir(t), name)
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

// contextFile is one file of a build context.
type contextFile struct {
	data []byte
	mode int64
}

// buildImage builds files (a context with a Dockerfile) with the classic
// builder, tags the result tag with the run label, and removes the tag on
// cleanup. It returns the image ID.
func buildImage(t testing.TB, cli *client.Client, tag string, files map[string]contextFile) string {
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

	resp, err := cli.ImageBuild(c, tarContext(t, files), build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      Labels(),
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("building image %q: %v", tag, err)
	}
	defer resp.Body.Close()
	buildErr := readBuildStream(resp.Body)
	// Register removal before judging the build: a failed build may still
	// have tagged nothing, which the cleanup tolerates.
	t.Cleanup(func() { removeImage(t, cli, tag) })
	if buildErr != nil {
		t.Fatalf("building image %q: %v", tag, buildErr)
	}

	built, err := cli.ImageInspect(c, tag)
	if err != nil {
		t.Fatalf("inspecting built image %q: %v", tag, err)
	}
	return built.ID
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

// tarContext packs files into a build context.
func tarContext(t testing.TB, files map[string]contextFile) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, f := range files {
		hdr := &tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.data))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("packing build context: %v", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatalf("packing build context: %v", err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("packing build context: %v", err)
	}
	return &buf
}

// readBuildStream drains the daemon's JSON progress stream and returns the
// build's error, with the last output lines for context.
func readBuildStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading build output: %w", err)
		}
		if s := strings.TrimSpace(msg.Stream); s != "" {
			tail = append(tail, s)
			if len(tail) > 10 {
				tail = tail[1:]
			}
		}
		if msg.ErrorDetail != nil && msg.Error == "" {
			msg.Error = msg.ErrorDetail.Message
		}
		if msg.Error != "" {
			return fmt.Errorf("%s\n%s", msg.Error, strings.Join(tail, "\n"))
		}
	}
}
