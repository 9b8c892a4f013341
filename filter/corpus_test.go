package filter

import (
	"context"
	"testing"
)

// casesFiles are the shared red-team corpus and sockpin's own cases.
var casesFiles = []string{"../testdata/redteam/cases.jsonl", "../testdata/redteam/sockpin-cases.jsonl"}

func readAllCases(t testing.TB) []Case {
	var all []Case
	for _, f := range casesFiles {
		cases, err := ReadCases(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cases...)
	}
	return all
}

// TestCorpusOffline decides every case of the red-team corpus against the
// default policy with fixtures in place of the daemon.
func TestCorpusOffline(t *testing.T) {
	p, err := Load("../policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := readAllCases(t)
	f := DefaultFixtures()
	legit := LegitRequests(cases, f)
	lim := Limits{MaxHeaderBytes: 64 << 10, MaxBodyBytes: 1 << 20}
	for _, c := range cases {
		steps := p.Trace(context.Background(), f.ExpandCase(c).Bytes(), lim, f)
		if !c.Holds(steps, legit) {
			t.Errorf("%s (%s, expect %s): %s", c.ID, c.Class, c.Expect, describeSteps(steps))
		}
	}
}

func describeSteps(steps []Step) string {
	s := ""
	for _, st := range steps {
		switch {
		case st.Refused != "":
			s += "[refused by server: " + st.Refused + "] "
		case st.Decision.Allowed:
			s += "[allowed " + st.Method + " " + clip(st.Target) + " rule " + st.Decision.Rule + "] "
		default:
			s += "[" + st.Decision.Message() + "] "
		}
	}
	return s
}
