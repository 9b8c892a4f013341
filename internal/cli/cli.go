// Package cli holds what the repository's commands share about their
// command lines.
package cli

import (
	"flag"
	"io"
	"strings"
)

// Parse parses args with fs. Usage asked for with -h or -help goes to
// stdout, so that it can be paged or searched; usage after a mistake goes
// to stderr. A flag set's Usage writes to fs.Output().
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if HelpAsked(fs, args) {
		fs.SetOutput(stdout)
	}
	return fs.Parse(args)
}

// HelpAsked reports whether args ask for help among the flags that fs
// parses, before the first argument that is not a flag.
func HelpAsked(fs *flag.FlagSet, args []string) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return false
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			return true
		}
		// A flag that takes a value and has none after "=" takes the next
		// argument.
		if f := fs.Lookup(name); f != nil && !hasValue && !isBool(f) {
			i++
		}
	}
	return false
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
