package filter

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	window := DefaultAPIWindow
	tests := []struct {
		name    string
		raw     string
		version string
		segs    string
		query   map[string]string
		err     string
	}{
		{name: "plain-path", raw: "/containers/json", segs: "containers/json"},
		{name: "versioned", raw: "/v1.41/_ping", version: "1.41", segs: "_ping"},
		{name: "highest-version", raw: "/v1.51/version", version: "1.51", segs: "version"},
		{name: "query-decoded", raw: "/containers/json?all=1&filters=%7B%22a%22%3A1%7D",
			segs: "containers/json", query: map[string]string{"all": "1", "filters": `{"a":1}`}},
		{name: "query-plus-is-space", raw: "/x?a=b+c", segs: "x", query: map[string]string{"a": "b c"}},
		{name: "image-name-with-colon", raw: "/images/launchdb/postgrest:v1/json",
			segs: "images/launchdb/postgrest:v1/json"},
		{name: "version-below-window", raw: "/v1.40/containers/json", err: "outside"},
		{name: "version-above-window", raw: "/v9.99/containers/json", err: "outside"},
		{name: "three-part-version-is-not-a-version", raw: "/v1.41.0/containers/json",
			segs: "v1.41.0/containers/json"},
		{name: "leading-zero-is-not-a-version", raw: "/v01.41/x", segs: "v01.41/x"},
		{name: "absolute-form", raw: "http://docker/containers/json", err: "not a path"},
		{name: "asterisk", raw: "*", err: "not a path"},
		{name: "empty", raw: "", err: "not a path"},
		{name: "double-slash", raw: "//containers/json", err: "empty segment"},
		{name: "trailing-slash", raw: "/containers/x/", err: "empty segment"},
		{name: "dot-dot", raw: "/containers/a/../b/stop", err: "dot segment"},
		{name: "dot", raw: "/containers/./json", err: "dot segment"},
		{name: "percent-encoded-letter", raw: "/containers/%70g/stop", err: "percent-encoded"},
		{name: "percent-encoded-slash", raw: "/v1.41%2F..%2Fx", err: "percent-encoded"},
		{name: "backslash", raw: `/containers/a\..\b/stop`, err: "backslash"},
		{name: "semicolon", raw: "/containers/a;b/stop", err: "semicolon"},
		{name: "fragment", raw: "/containers/a/json#x", err: "fragment"},
		{name: "control-byte", raw: "/containers/a\x01/json", err: "control byte"},
		{name: "space", raw: "/containers/a b/json", err: "contains"},
		{name: "repeated-query-key", raw: "/containers/create?name=a&name=b", err: "repeated"},
		{name: "query-semicolon", raw: "/x?a=1;b=2", err: "semicolon"},
		{name: "query-bad-escape", raw: "/x?a=%zz", err: "badly encoded"},
		{name: "query-control-character", raw: "/x?a=%00", err: "control character"},
		{name: "query-empty-key", raw: "/x?=1", err: "without a name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTarget(tt.raw, window)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got.version != tt.version {
				t.Errorf("got version %q, want %q", got.version, tt.version)
			}
			if s := strings.Join(got.segs, "/"); s != tt.segs {
				t.Errorf("got segments %q, want %q", s, tt.segs)
			}
			for k, v := range tt.query {
				if got.query[k] != v {
					t.Errorf("got query %s=%q, want %q", k, got.query[k], v)
				}
			}
		})
	}
}

func TestParseAPIVersion(t *testing.T) {
	for _, s := range []string{"1.41", "0.1", "2.0"} {
		if _, ok := ParseAPIVersion(s); !ok {
			t.Errorf("ParseAPIVersion(%q): got not ok, want ok", s)
		}
	}
	for _, s := range []string{"", "1", "1.", ".1", "01.41", "1.041", "1.4a", "+1.41", "1.41.0", "1..41"} {
		if _, ok := ParseAPIVersion(s); ok {
			t.Errorf("ParseAPIVersion(%q): got ok, want refused", s)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/v1.41/containers/json?all=1", "/containers/x/../y", "/images/a/b:c/json",
		"/%2e%2e", "//x", "/x?a=1&a=2", "/v1.41%2F..%2Fx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseTarget(raw, DefaultAPIWindow)
		if err != nil {
			return
		}
		// Whatever is accepted is canonical: no segment is empty or a dot
		// segment, and no byte outside the path alphabet survives.
		for _, s := range got.segs {
			if s == "" || s == "." || s == ".." {
				t.Fatalf("accepted %q with segment %q", raw, s)
			}
			if strings.ContainsAny(s, "%\\;#?") {
				t.Fatalf("accepted %q with segment %q", raw, s)
			}
		}
		path, _, _ := strings.Cut(raw, "?")
		if checkPathBytes(path) != nil {
			t.Fatalf("accepted %q whose path has refused bytes", raw)
		}
	})
}
