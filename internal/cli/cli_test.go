package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestHelpGoesToStdoutAndMistakesToStderr(t *testing.T) {
	for _, tt := range []struct {
		args []string
		help bool
	}{
		{[]string{"-h"}, true},
		{[]string{"--help"}, true},
		{[]string{"-v", "-help"}, true},
		{[]string{"-policy", "p.yaml", "-h"}, true},
		{[]string{"-policy=p.yaml", "-h"}, true},
		{[]string{"-policy", "-h"}, false}, // -h is the policy file's name
		{[]string{"FILE", "-h"}, false},    // after the first argument, flags end
		{[]string{"--", "-h"}, false},
		{[]string{"-nope"}, false},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.String("policy", "", "")
		fs.Bool("v", false, "")
		fs.Usage = func() { fmt.Fprint(fs.Output(), "Usage: x") }
		var stdout, stderr bytes.Buffer
		err := Parse(fs, tt.args, &stdout, &stderr)
		if got := HelpAsked(fs, tt.args); got != tt.help {
			t.Errorf("%q: help asked %v, want %v", tt.args, got, tt.help)
		}
		switch {
		case tt.help && (!errors.Is(err, flag.ErrHelp) || stdout.String() != "Usage: x" || stderr.Len() != 0):
			t.Errorf("%q: got %v, stdout %q, stderr %q; want the usage on stdout", tt.args, err,
				stdout.String(), stderr.String())
		case !tt.help && stdout.Len() != 0:
			t.Errorf("%q: stdout %q, want nothing", tt.args, stdout.String())
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), "Usage: x") }
	var stdout, stderr bytes.Buffer
	if err := Parse(fs, []string{"-nope"}, &stdout, &stderr); err == nil ||
		!bytes.Contains(stderr.Bytes(), []byte("Usage: x")) || stdout.Len() != 0 {
		t.Errorf("unknown flag: got %v, stderr %q; want the error and usage on stderr", err, stderr.String())
	}
}
