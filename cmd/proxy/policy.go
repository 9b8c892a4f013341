package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/launchdb/sockpin/filter"
	"github.com/launchdb/sockpin/internal/cli"
)

const policyUsage = `Usage: proxy policy COMMAND ...

  check FILE                  parse, validate and compile a policy; print a one-line summary and
                              warnings, or every problem with its line and column (exit 1)
  explain [-markdown] FILE    the policy in plain sentences, grouped by operation
  test [-fixtures F] FILE CASES.jsonl
                              decide each request of a cases file offline, with the same code the
                              proxy runs; exit 1 when a decision differs from the case's expect
  migrate [VAR=VALUE ...]     turn docker-socket-proxy settings (Tecnativa, LinuxServer: CONTAINERS=1,
                              POST=1, EXEC=1, ...) from the environment and the arguments into a
                              starting policy that says what the old settings exposed
`

func runPolicy(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return errUsage
	}
	switch args[0] {
	case "check":
		return policyCheck(args[1:], stdout, stderr)
	case "explain":
		return policyExplain(args[1:], stdout, stderr)
	case "test":
		return policyTest(ctx, args[1:], stdout, stderr)
	case "migrate":
		return policyMigrate(args[1:], getenv, stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	fmt.Fprint(stderr, policyUsage)
	return fmt.Errorf("%w: unknown policy command %q", errUsage, args[0])
}

// policyFlags parses a subcommand's flags and requires n arguments.
func policyFlags(name string, args []string, n int, stdout, stderr io.Writer, define func(*flag.FlagSet)) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet("proxy policy "+name, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), policyUsage) }
	if define != nil {
		define(fs)
	}
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return nil, err
	}
	if fs.NArg() != n {
		fs.Usage()
		for _, a := range fs.Args() {
			if strings.HasPrefix(a, "-") {
				return nil, fmt.Errorf("%w: policy %s: flags go before the arguments, and %q came after",
					errUsage, name, a)
			}
		}
		return nil, fmt.Errorf("%w: policy %s takes %d argument(s)", errUsage, name, n)
	}
	return fs, nil
}

func policyCheck(args []string, stdout, stderr io.Writer) error {
	fs, err := policyFlags("check", args, 1, stdout, stderr, nil)
	if err != nil {
		return err
	}
	file := fs.Arg(0)
	p, err := filter.Load(file)
	var problems filter.Problems
	if errors.As(err, &problems) {
		for _, pr := range problems {
			fmt.Fprintf(stdout, "%s:%d:%d: error: %s\n", file, pr.Pos.Line, pr.Pos.Column, pr.Message)
		}
		return fmt.Errorf("%s: %d problem(s); the policy would not load", file, len(problems))
	}
	if err != nil {
		return err
	}
	for _, w := range p.Warnings() {
		fmt.Fprintf(stdout, "%s:%d:%d: warning: %s\n", file, w.Pos.Line, w.Pos.Column, w.Message)
	}
	fmt.Fprintf(stdout, "%s: ok: %s; sha256 %s\n", file, p.Summary(), p.SHA256())
	return nil
}

func policyExplain(args []string, stdout, stderr io.Writer) error {
	var markdown *bool
	fs, err := policyFlags("explain", args, 1, stdout, stderr, func(fs *flag.FlagSet) {
		markdown = fs.Bool("markdown", false, "write Markdown, for a review document")
	})
	if err != nil {
		return err
	}
	p, err := filter.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	p.Explain(stdout, fs.Arg(0), *markdown)
	return nil
}

func policyTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var fixtures *string
	var maxBody, maxHeader *int64
	fs, err := policyFlags("test", args, 2, stdout, stderr, func(fs *flag.FlagSet) {
		fixtures = fs.String("fixtures", "", "YAML `FILE` of containers, execs, networks and images "+
			"standing in for the daemon (default: the red-team corpus fixtures)")
		maxBody = fs.Int64("max-body-bytes", 1<<20, "the proxy's body limit")
		maxHeader = fs.Int64("max-header-bytes", 64<<10, "the proxy's header limit")
	})
	if err != nil {
		return err
	}
	p, err := filter.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	cases, err := filter.ReadCases(fs.Arg(1))
	if err != nil {
		return err
	}
	fx := filter.DefaultFixtures()
	if *fixtures != "" {
		if fx, err = filter.LoadFixtures(*fixtures); err != nil {
			return err
		}
	}
	legit := filter.LegitRequests(cases, fx)
	lim := filter.Limits{MaxHeaderBytes: int(*maxHeader), MaxBodyBytes: *maxBody}
	differ := 0
	for _, c := range cases {
		steps := p.Trace(ctx, fx.ExpandCase(c).Bytes(), lim, fx)
		mark := "ok  "
		if !c.Holds(steps, legit) {
			mark, differ = "FAIL", differ+1
		}
		fmt.Fprintf(stdout, "%s %-44s expect %-5s %s\n", mark, c.ID, c.Expect, describeSteps(steps))
	}
	fmt.Fprintf(stdout, "%d cases: %d as expected, %d differ\n", len(cases), len(cases)-differ, differ)
	if differ > 0 {
		return fmt.Errorf("%d case(s) differ from their expectation", differ)
	}
	return nil
}

// describeSteps renders what happened to each request of a case.
func describeSteps(steps []filter.Step) string {
	var parts []string
	for _, s := range steps {
		switch d := s.Decision; {
		case s.Refused != "":
			parts = append(parts, "refused by the HTTP server: "+s.Refused)
		case d.Allowed:
			parts = append(parts, fmt.Sprintf("forwarded %s (rule %s)", d.Op, d.Rule))
		case d.Rule == filter.RuleLookup:
			parts = append(parts, fmt.Sprintf("daemon answered %d: %s", d.Status, d.Reason))
		default:
			parts = append(parts, fmt.Sprintf("refused %d %s (rule %s): %s", d.Status, d.Op, d.Rule, d.Reason))
		}
	}
	if len(parts) == 0 {
		return "no request"
	}
	return strings.Join(parts, "; then ")
}
