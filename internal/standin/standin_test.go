package standin

import (
	"archive/tar"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestTarAddsParentsBeforeChildren(t *testing.T) {
	files := Tree{}
	files.File("usr/bin/curl", []byte("x"), 0o755)
	files.Symlink("bin/sh", "/bin/busybox")
	r, err := files.Tar()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, hdr.Name+">"+hdr.Linkname)
	}
	want := "bin/>,bin/sh>/bin/busybox,usr/>,usr/bin/>,usr/bin/curl>"
	if strings.Join(got, ",") != want {
		t.Errorf("entries: got %s, want %s", strings.Join(got, ","), want)
	}
}

func TestReadProgressReportsTheDaemonsError(t *testing.T) {
	stream := `{"status":"step 1"}` + "\n" + `{"errorDetail":{"message":"no space left"}}`
	err := ReadProgress(strings.NewReader(stream))
	if err == nil || !strings.Contains(err.Error(), "no space left") ||
		!strings.Contains(err.Error(), "step 1") {
		t.Errorf("got %v, want the error and the last output", err)
	}
	if err := ReadProgress(strings.NewReader(`{"status":"done"}`)); err != nil {
		t.Errorf("clean stream: got %v, want nil", err)
	}
}
