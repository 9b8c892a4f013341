package manager

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestBuildPostgRESTConfigVectors(t *testing.T) {
	tests := []struct {
		name, id, password, jwt string
		wantLen                 int
		wantSHA                 string
		wantLines               map[int]string
	}{
		{
			name: "c1-escaping", id: "proj_0000000000000000", password: "p+a/s=s", jwt: `sec"ret`,
			wantLen: 588,
			wantSHA: "a62d9ad5aa5afb8e9c649370e31fb56d648d7e9471680465bb2d1bdc01cb86c7",
			wantLines: map[int]string{
				2:  `db-uri = "postgres://proj_0000000000000000_authenticator:p%2Ba%2Fs%3Ds@pgbouncer:6432/proj_0000000000000000"`,
				13: `jwt-secret = "sec\"ret"`,
			},
		},
		{
			name: "c2-platform-api-secrets", id: "proj_0123456789abcdef",
			password: "lfQ6Zhh0sOUkBzeMcjOEfzAdOSY0JA9nhXqlXPR0pbc=",
			jwt:      "ljW+uuBmO3OWA2+HP/0XckNWzQCoRHP0xS/ppta/b6RQP3HLjhIRNE7uyTobUFTO/D+q3gXg4CgOR9a4Fr/CZQ==",
			wantLen:  701,
			wantSHA:  "bd97338af376b1d8870f5db8b1b38dbc777abd79635fcbbcadce147f79f21791",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BuildPostgRESTConfig(tt.id, tt.id, ProjectSecrets{DBPassword: tt.password,
				JWTSecret: tt.jwt})
			if len(got) != tt.wantLen {
				t.Errorf("length: got %d, want %d", len(got), tt.wantLen)
			}
			sum := sha256.Sum256(got)
			if h := hex.EncodeToString(sum[:]); h != tt.wantSHA {
				t.Errorf("sha256: got %s, want %s", h, tt.wantSHA)
			}
			if h := ConfigHash(got); h != tt.wantSHA[:16] {
				t.Errorf("configHash: got %s, want %s", h, tt.wantSHA[:16])
			}
			lines := strings.Split(string(got), "\n")
			if len(lines) != 18 || lines[17] != "" {
				t.Errorf("lines: got %d (last %q), want 18 with an empty last", len(lines),
					lines[len(lines)-1])
			}
			for n, want := range tt.wantLines {
				if lines[n-1] != want {
					t.Errorf("line %d: got %q, want %q", n, lines[n-1], want)
				}
			}
		})
	}
}

func TestEncodeURIComponent(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unreserved-kept", "AZaz09-_.!~*'()", "AZaz09-_.!~*'()"},
		{"base64-specials", "a+b/c=", "a%2Bb%2Fc%3D"},
		{"space-is-percent-20", "a b", "a%20b"},
		{"uri-delimiters", ":/?#[]@$&,;\"%", "%3A%2F%3F%23%5B%5D%40%24%26%2C%3B%22%25"},
		{"utf8-upper-hex", "é€😀", "%C3%A9%E2%82%AC%F0%9F%98%80"},
		{"control-bytes", "\x00\n\x7f", "%00%0A%7F"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeURIComponent(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
