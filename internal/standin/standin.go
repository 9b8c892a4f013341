// Package standin builds the images of sockpin's stand-ins for PostgREST and PgBouncer
// from the stand-in program (internal/dockertest/testdata/standin) and, for PgBouncer,
// Debian's static BusyBox. Images are imported as one layer from an in-memory file tree:
// no builder, no base image, no registry. The test helpers and `make demo` both use it.
package standin

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Program is the stand-in program's package, relative to the module root.
const Program = "./internal/dockertest/testdata/standin"

// BusyboxPath is the static BusyBox (Debian's busybox-static) copied into
// images that need a shell.
const BusyboxPath = "/bin/busybox"

// PgBouncerStateDir is where the PgBouncer stand-in is told to record
// SIGHUPs; callers bind-mount a host directory there to read them.
const PgBouncerStateDir = "/var/lib/standin"

// PgBouncerINI is the pgbouncer.ini a PgBouncer stand-in starts with: the
// platform database in session mode, as LaunchDB ships it.
const PgBouncerINI = `[databases]
platform = host=postgres port=5432 dbname=platform pool_mode=session pool_size=25 reserve_pool=5

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
auth_user = pgbouncer_auth
auth_query = SELECT usename, passwd FROM pgbouncer.get_auth($1)
auth_dbname = platform
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
`

// containerPath is PATH inside the images; FROM scratch has none.
const containerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Image is the content of a one-layer image: its files and the Dockerfile
// instructions (ENV, ENTRYPOINT, LABEL, ...) applied on import.
type Image struct {
	Files   Tree
	Changes []string
}

// PostgREST returns the PostgREST stand-in image for the program's bytes:
// /app and /usr/bin/curl are the program, ENTRYPOINT ["/app", "serve"] takes
// the config path as the real image's entrypoint does, EXPOSE 3000.
func PostgREST(program []byte) Image {
	files := Tree{}
	files.Users()
	files.File("app", program, 0o755)
	files.File("usr/bin/curl", program, 0o755)
	return Image{Files: files, Changes: []string{
		"ENV PATH=" + containerPath,
		"EXPOSE 3000",
		`ENTRYPOINT ["/app", "serve"]`,
	}}
}

// PgBouncer returns the PgBouncer stand-in image: BusyBox with each applet
// linked in /bin (as `busybox --install -s /bin` would), /tmp, and the
// program as PID 1 counting SIGHUPs into the file named by its argument.
func PgBouncer(program, busybox []byte, applets []string) Image {
	files := Tree{}
	files.Users()
	files.File("bin/busybox", busybox, 0o755)
	for _, applet := range applets {
		if _, ok := files["bin/"+applet]; !ok {
			files.Symlink("bin/"+applet, "/bin/busybox")
		}
	}
	files.File("usr/local/bin/standin", program, 0o755)
	files.Dir("tmp", 0o1777)
	files.Dir("etc/pgbouncer", 0o755)
	files.Dir("var/run", 0o755)
	files.Dir(strings.TrimPrefix(PgBouncerStateDir, "/"), 0o755)
	return Image{Files: files, Changes: []string{
		"ENV PATH=" + containerPath,
		`ENTRYPOINT ["/usr/local/bin/standin", "pgbouncer"]`,
	}}
}

// Applets lists the applets of the BusyBox binary at path.
func Applets(path string) ([]string, error) {
	out, err := exec.Command(path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing BusyBox applets: %w", err)
	}
	var applets []string
	for _, name := range strings.Fields(string(out)) {
		if name != "busybox" && !strings.Contains(name, "/") {
			applets = append(applets, name)
		}
	}
	return applets, nil
}

// Import imports img as tag, adding a LABEL instruction for each of labels.
// It returns the image ID.
func Import(ctx context.Context, cli *client.Client, tag string, img Image,
	labels map[string]string,
) (string, error) {
	layer, err := img.Files.Tar()
	if err != nil {
		return "", err
	}
	changes := slices.Clone(img.Changes)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		changes = append(changes, "LABEL "+k+"="+labels[k])
	}
	body, err := cli.ImageImport(ctx, image.ImportSource{Source: layer, SourceName: "-"},
		tag, image.ImportOptions{Changes: changes})
	if err != nil {
		return "", fmt.Errorf("importing image %q: %w", tag, err)
	}
	err = ReadProgress(body)
	body.Close()
	if err != nil {
		return "", fmt.Errorf("importing image %q: %w", tag, err)
	}
	imported, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("inspecting imported image %q: %w", tag, err)
	}
	return imported.ID, nil
}

// Tree is the file tree of an image, by path without a leading slash.
type Tree map[string]Entry

// Entry is one file, directory or symlink of a Tree.
type Entry struct {
	Data []byte
	Mode int64
	Link string // symlink target, for a symlink
	Dir  bool
}

// File adds a regular file.
func (t Tree) File(path string, data []byte, mode int64) {
	t[path] = Entry{Data: data, Mode: mode}
}

// Dir adds a directory.
func (t Tree) Dir(path string, mode int64) {
	t[path] = Entry{Dir: true, Mode: mode}
}

// Symlink adds a symbolic link to target.
func (t Tree) Symlink(path, target string) {
	t[path] = Entry{Link: target, Mode: 0o777}
}

// Users adds /etc/passwd and /etc/group with root and postgres (UID 70, as
// in Alpine's PgBouncer image): Docker resolves an exec's User "root"
// through /etc/passwd and refuses the exec without it.
func (t Tree) Users() {
	t.File("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"+
		"postgres:x:70:70:postgres:/var/lib/postgresql:/bin/sh\n"), 0o644)
	t.File("etc/group", []byte("root:x:0:root\npostgres:x:70:\n"), 0o644)
}

// Tar packs the tree, adding missing parent directories (0755) and writing
// every directory before what it holds.
func (t Tree) Tar() (io.Reader, error) {
	for path := range t {
		for dir := filepath.Dir(path); dir != "."; dir = filepath.Dir(dir) {
			if _, ok := t[dir]; !ok {
				t.Dir(dir, 0o755)
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, path := range slices.Sorted(maps.Keys(t)) {
		e := t[path]
		hdr := &tar.Header{
			Name: path, Mode: e.Mode, Typeflag: tar.TypeReg, Size: int64(len(e.Data)),
		}
		switch {
		case e.Dir:
			hdr.Name, hdr.Typeflag = path+"/", tar.TypeDir
		case e.Link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Link
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("packing image files: %w", err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return nil, fmt.Errorf("packing image files: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("packing image files: %w", err)
	}
	return &buf, nil
}

// ReadProgress drains the daemon's JSON progress stream (of an import or a
// build) and returns the error it reports, with the last output lines.
func ReadProgress(r io.Reader) error {
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
