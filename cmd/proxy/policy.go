package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/launchdb/sockpin/filter"
)

const policyUsage = `Usage: proxy policy check FILE

  check FILE   parse, validate and compile a policy; print a summary, or every
               problem with its line and column (exit 1)
`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return errUsage
	}
	switch args[0] {
	case "check":
		return policyCheck(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	fmt.Fprint(stderr, policyUsage)
	return fmt.Errorf("%w: unknown policy command %q", errUsage, args[0])
}

func policyCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("proxy policy check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, policyUsage)
		return errUsage
	}
	p, err := filter.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	for _, w := range p.Warnings() {
		fmt.Fprintf(stdout, "%s: warning: %s\n", fs.Arg(0), w.Error())
	}
	fmt.Fprintf(stdout, "%s: ok (sha256 %s)\n", fs.Arg(0), p.SHA256())
	return nil
}
