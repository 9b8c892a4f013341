package filter

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBrokenPolicies loads each policy of testdata/policies and checks the
// problem its first line announces: "# want: LINE:COL: text" for an error
// that stops the policy, "# warn: LINE:COL: text" for a warning.
func TestBrokenPolicies(t *testing.T) {
	files, _ := filepath.Glob("testdata/policies/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test policies")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			kind, spec, ok := strings.Cut(strings.TrimPrefix(first, "# "), ": ")
			line, col, text := parseWant(t, spec)
			if !ok {
				t.Fatalf("first line %q announces no problem", first)
			}
			p, err := Parse(data)
			var problems Problems
			switch kind {
			case "want":
				if err == nil {
					t.Fatalf("got a valid policy, want the problem %q", spec)
				}
				var isProblems bool
				if problems, isProblems = errProblems(err); !isProblems {
					t.Fatalf("got error %v, want Problems", err)
				}
			case "warn":
				if err != nil {
					t.Fatalf("got %v, want a valid policy with a warning", err)
				}
				problems = p.Warnings()
			default:
				t.Fatalf("unknown announcement %q", kind)
			}
			for _, pr := range problems {
				if pr.Pos.Line == line && pr.Pos.Column == col && strings.Contains(pr.Message, text) {
					return
				}
			}
			t.Errorf("got problems:\n%v\nwant one at %d:%d containing %q", problems, line, col, text)
		})
	}
}

func parseWant(t *testing.T, spec string) (int, int, string) {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 {
		t.Fatalf("bad announcement %q", spec)
	}
	line, err1 := strconv.Atoi(parts[0])
	col, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("bad position in %q", spec)
	}
	return line, col, strings.TrimSpace(parts[2])
}

func TestDefaultPolicyIsClean(t *testing.T) {
	p := mustPolicy(t, "../policy.yaml")
	if len(p.Warnings()) != 0 {
		t.Errorf("policy.yaml has warnings:\n%v", p.Warnings())
	}
}
