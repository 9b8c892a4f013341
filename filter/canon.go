package filter

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// APIVersion is an Engine API version such as 1.41.
type APIVersion struct {
	Major, Minor int
}

func (v APIVersion) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v comes before w.
func (v APIVersion) Less(w APIVersion) bool {
	return v.Major < w.Major || v.Major == w.Major && v.Minor < w.Minor
}

// ParseAPIVersion parses "1.41". Leading zeros, signs and extra parts are
// refused: a version is written one way only.
func ParseAPIVersion(s string) (APIVersion, bool) {
	maj, min, ok := strings.Cut(s, ".")
	if !ok {
		return APIVersion{}, false
	}
	a, okA := plainNumber(maj)
	b, okB := plainNumber(min)
	return APIVersion{a, b}, okA && okB
}

// plainNumber parses decimal digits without sign or leading zero.
func plainNumber(s string) (int, bool) {
	if s == "" || len(s) > 4 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// target is a request-target taken apart. Only a target that is already
// canonical is taken apart; anything else is refused, never repaired.
type target struct {
	// version is the /vN.NN prefix, or "" when the path has none.
	version string
	// segs are the path segments after the version prefix.
	segs []string
	// query holds each query key once, decoded.
	query map[string]string
}

// parseTarget checks that raw is a canonical origin-form request-target and
// splits it. The error is a reason for a 400 answer.
func parseTarget(raw string, window [2]APIVersion) (target, error) {
	var t target
	if raw == "" || raw[0] != '/' {
		return t, fmt.Errorf("request target %q is not a path", clip(raw))
	}
	path, rawQuery, _ := strings.Cut(raw, "?")
	if err := checkPathBytes(path); err != nil {
		return t, err
	}
	segs := strings.Split(path[1:], "/")
	for _, s := range segs {
		switch s {
		case "":
			return t, fmt.Errorf("path %q has an empty segment", clip(path))
		case ".", "..":
			return t, fmt.Errorf("path %q has a dot segment", clip(path))
		}
	}
	if v, ok := strings.CutPrefix(segs[0], "v"); ok && len(segs) > 1 {
		if ver, ok := ParseAPIVersion(v); ok {
			if ver.Less(window[0]) || window[1].Less(ver) {
				return t, fmt.Errorf("API version %s is outside the allowed %s to %s",
					ver, window[0], window[1])
			}
			t.version = ver.String()
			segs = segs[1:]
		}
	}
	t.segs = segs
	q, err := parseQuery(rawQuery)
	t.query = q
	return t, err
}

// checkPathBytes allows only the characters that Docker object names,
// IDs, image references and API paths use. Percent-encoding never appears
// in a canonical path, so a '%' is refused outright.
func checkPathBytes(path string) error {
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/', c == '-', c == '_', c == '.', c == ':', c == '@':
		case c == '%':
			return fmt.Errorf("path %q is percent-encoded", clip(path))
		case c == '\\':
			return fmt.Errorf("path %q contains a backslash", clip(path))
		case c == ';':
			return fmt.Errorf("path %q contains a semicolon", clip(path))
		case c == '#':
			return fmt.Errorf("path %q contains a fragment", clip(path))
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("path %q contains a control byte", clip(path))
		default:
			return fmt.Errorf("path %q contains %q", clip(path), c)
		}
	}
	return nil
}

// parseQuery decodes a query string the way the daemon does (Go's
// url.ParseQuery rules) but refuses what the daemon would read ambiguously:
// repeated keys, semicolons, control characters.
func parseQuery(raw string) (map[string]string, error) {
	if raw == "" {
		return nil, nil
	}
	q := make(map[string]string)
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		if strings.Contains(pair, ";") {
			return nil, fmt.Errorf("query contains a semicolon")
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("query parameter %q is badly encoded", clip(k))
		}
		if key == "" {
			return nil, fmt.Errorf("query has a parameter without a name")
		}
		if hasControl(key) || hasControl(val) {
			return nil, fmt.Errorf("query parameter %q contains a control character", clip(key))
		}
		if _, dup := q[key]; dup {
			return nil, fmt.Errorf("query parameter %q is repeated", clip(key))
		}
		q[key] = val
	}
	return q, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// clip shortens untrusted text for messages and logs.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
