package filter

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/docker/docker/api/types/container"
)

// execRule is a compiled ExecRule.
type execRule struct {
	name  string
	user  string
	argv  []valueMatch
	tty   bool
	stdin bool
}

func (c *compiler) execRule(what string, r *ExecRule) *execRule {
	if r.Rule == "" {
		c.fail(r.Pos, "%s.exec: every exec rule needs a name (rule: ...)", what)
	}
	what += ".exec " + r.Rule
	if len(r.Argv) == 0 {
		c.fail(r.Pos, "%s: argv is required", what)
	}
	e := &execRule{name: r.Rule, user: r.User, tty: r.Tty, stdin: r.Stdin}
	for i, m := range r.Argv {
		e.argv = append(e.argv, c.match(fmt.Sprintf("%s.argv[%d]", what, i), m))
	}
	return e
}

// check decides whether an exec create request fits the rule; "" means it
// does. opts is a copy and is not seen by the caller.
func (e *execRule) check(opts container.ExecOptions) string {
	if len(opts.Cmd) != len(e.argv) {
		return fmt.Sprintf("command has %d arguments, exec rule %s expects %d",
			len(opts.Cmd), e.name, len(e.argv))
	}
	for i, m := range e.argv {
		if !m.matches(opts.Cmd[i]) {
			return fmt.Sprintf("argument %d of the command does not match exec rule %s (%s)",
				i, e.name, shorten(m.String()))
		}
	}
	if opts.User != e.user {
		return fmt.Sprintf("exec must run as user %q", e.user)
	}
	// Output streams are harmless; a terminal or stdin only when the rule
	// says so.
	opts.Cmd, opts.User, opts.AttachStdout, opts.AttachStderr = nil, "", false, false
	if e.tty {
		opts.Tty, opts.ConsoleSize = false, nil
	}
	if e.stdin {
		opts.AttachStdin = false
	}
	if f := firstSet(reflect.ValueOf(opts), ""); f != "" {
		return fmt.Sprintf("field %s is not allowed", f)
	}
	return ""
}

// checkExecStart refuses start options no exec rule of the group allows.
// Detach is refused always: a detached start answers without switching
// protocols and the connection would go on carrying requests the daemon
// reads as a new exchange.
func checkExecStart(g *group, opts container.ExecStartOptions) string {
	if opts.Detach {
		return "detached exec start is not allowed"
	}
	tty := false
	for _, e := range g.exec {
		tty = tty || e.tty
	}
	if (opts.Tty || opts.ConsoleSize != nil) && !tty {
		return "exec start with a terminal is not allowed"
	}
	return ""
}

// shorten keeps long pinned values (a script) readable in a message.
func shorten(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// checkExecProcess checks an exec instance the client did not necessarily
// create through the proxy (it may have been created on the daemon
// directly) before it may be started or inspected: never privileged, a
// terminal or stdin only when one of the group's exec rules allows it, and
// with exec_start_pinned, a command and user that one of the rules allows.
func (g *group) checkExecProcess(inspect []byte) string {
	var ex struct {
		OpenStdin     bool
		ProcessConfig struct {
			Tty        bool     `json:"tty"`
			Entrypoint string   `json:"entrypoint"`
			Arguments  []string `json:"arguments"`
			Privileged *bool    `json:"privileged"`
			User       string   `json:"user"`
		}
	}
	if err := json.Unmarshal(inspect, &ex); err != nil {
		return "the exec instance could not be read"
	}
	pc := ex.ProcessConfig
	if pc.Privileged != nil && *pc.Privileged {
		return "the exec instance is privileged"
	}
	tty, stdin := false, false
	for _, e := range g.exec {
		tty, stdin = tty || e.tty, stdin || e.stdin
	}
	if pc.Tty && !tty {
		return "the exec instance has a terminal"
	}
	if ex.OpenStdin && !stdin {
		return "the exec instance takes standard input"
	}
	if !g.execStartPinned {
		return ""
	}
	argv := append([]string{pc.Entrypoint}, pc.Arguments...)
	for _, e := range g.exec {
		if e.user == pc.User && e.matchesArgv(argv) {
			return ""
		}
	}
	return "the exec instance runs a command no exec rule allows"
}

// matchesArgv reports whether a command line fits the rule's argv.
func (e *execRule) matchesArgv(argv []string) bool {
	if len(argv) != len(e.argv) {
		return false
	}
	for i, m := range e.argv {
		if !m.matches(argv[i]) {
			return false
		}
	}
	return true
}
