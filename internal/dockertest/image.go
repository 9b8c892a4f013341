package dockertest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
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
	bin := readFile(t, Standin(t))
	root := rootfs{}
	root.users()
	root.file("app", bin, 0o755)
	root.file("usr/bin/curl", bin, 0o755)
	return importImage(t, cli, tag, root, []string{
		"ENV PATH=" + containerPath,
		"EXPOSE 3000",
		`ENTRYPOINT ["/app", "serve"]`,
	})
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

// importImage imports root as a one-layer image tagged tag, with the
// Dockerfile instructions changes and the run label, and removes the tag on
// cleanup. Importing skips the builder: no intermediate containers or
// images, and a fraction of a second. It returns the image ID.
func importImage(t testing.TB, cli *client.Client, tag string, root rootfs,
	changes []string,
) string {
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

	changes = append(changes, "LABEL "+RunLabel+"="+RunID())
	body, err := cli.ImageImport(c, image.ImportSource{Source: root.tar(t), SourceName: "-"},
		tag, image.ImportOptions{Changes: changes})
	if err != nil {
		t.Fatalf("importing image %q: %v", tag, err)
	}
	defer body.Close()
	importErr := readProgress(body)
	t.Cleanup(func() { removeImage(t, cli, tag) })
	if importErr != nil {
		t.Fatalf("importing image %q: %v", tag, importErr)
	}

	imported, err := cli.ImageInspect(c, tag)
	if err != nil {
		t.Fatalf("inspecting imported image %q: %v", tag, err)
	}
	return imported.ID
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

// rootfs is the file tree of an image, by path without a leading slash.
type rootfs map[string]rootfsEntry

type rootfsEntry struct {
	data []byte
	mode int64
	link string // symlink target, for a symlink
	dir  bool
}

func (r rootfs) file(path string, data []byte, mode int64) {
	r[path] = rootfsEntry{data: data, mode: mode}
}

// users adds /etc/passwd and /etc/group with root and postgres (UID 70, as
// in Alpine's PgBouncer image): Docker resolves an exec's User "root"
// through /etc/passwd and refuses the exec without it.
func (r rootfs) users() {
	r.file("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"+
		"postgres:x:70:70:postgres:/var/lib/postgresql:/bin/sh\n"), 0o644)
	r.file("etc/group", []byte("root:x:0:root\npostgres:x:70:\n"), 0o644)
}

func (r rootfs) dir(path string, mode int64) {
	r[path] = rootfsEntry{dir: true, mode: mode}
}

func (r rootfs) symlink(path, target string) {
	r[path] = rootfsEntry{link: target, mode: 0o777}
}

// tar packs the tree, adding missing parent directories (0755) and writing
// every directory before what it holds.
func (r rootfs) tar(t testing.TB) io.Reader {
	t.Helper()
	for path := range r {
		for dir := filepath.Dir(path); dir != "."; dir = filepath.Dir(dir) {
			if _, ok := r[dir]; !ok {
				r.dir(dir, 0o755)
			}
		}
	}
	paths := slices.Sorted(maps.Keys(r))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, path := range paths {
		e := r[path]
		hdr := &tar.Header{
			Name: path, Mode: e.mode, Typeflag: tar.TypeReg, Size: int64(len(e.data)),
		}
		switch {
		case e.dir:
			hdr.Name, hdr.Typeflag = path+"/", tar.TypeDir
		case e.link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("packing image files: %v", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatalf("packing image files: %v", err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("packing image files: %v", err)
	}
	return &buf
}

// readProgress drains the daemon's JSON progress stream (of an import or a
// build) and returns the error it reports, with the last output lines.
func readProgress(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
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
			return fmt.Errorf("reading progress: %w", err)
		}
		if s := strings.TrimSpace(msg.Stream + msg.Status); s != "" {
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
