package filter

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// groupActions are the words a group's allow list may use, with the
// operations each one allows.
var groupActions = map[string][]Op{
	"inspect": {OpContainerInspect, OpContainerList},
	"start":   {OpContainerStart},
	"stop":    {OpContainerStop},
	"restart": {OpContainerRestart},
	"kill":    {OpContainerKill},
	"remove":  {OpContainerRemove},
	"wait":    {OpContainerWait},
	"logs":    {OpContainerLogs},
	"exec":    {OpExecCreate, OpExecStart, OpExecInspect},
}

// group is a compiled GroupRule.
type group struct {
	name      string
	labels    []labelMatch
	allow     map[Op]bool
	signals   map[int]string
	force     bool
	volumes   bool
	redactEnv bool
	exec      []*execRule
	// execStartPinned limits exec start and inspect to execs whose command
	// and user fit an exec rule.
	execStartPinned bool
}

type labelMatch struct {
	key string
	valueMatch
}

// contains reports whether a container with these labels belongs to g.
func (g *group) contains(labels map[string]string) bool {
	return g.containsFunc(func(k string) (string, bool) { v, ok := labels[k]; return v, ok })
}

// containsFunc is contains over a label lookup function.
func (g *group) containsFunc(get func(string) (string, bool)) bool {
	for _, l := range g.labels {
		v, ok := get(l.key)
		if !ok || !l.matches(v) {
			return false
		}
	}
	return true
}

var groupName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

func (c *compiler) groups(rules map[string]*GroupRule) []*group {
	var out []*group
	for _, name := range sortedKeys(rules) {
		r := rules[name]
		if r == nil {
			c.fail(Pos{}, "groups.%s: the group is empty", name)
			continue
		}
		if !groupName.MatchString(name) {
			c.fail(r.Pos, "groups: name %q must be lower-case letters, digits, - or _", name)
		}
		out = append(out, c.group(name, r))
	}
	return out
}

func (c *compiler) group(name string, r *GroupRule) *group {
	g := &group{name: name, allow: map[Op]bool{}, redactEnv: r.RedactEnv,
		execStartPinned: r.ExecStartPinned}
	what := "groups." + name
	if len(r.Labels) == 0 {
		c.fail(r.Pos, "%s: a group needs at least one label, or it would hold every container", what)
	}
	for _, key := range sortedKeys(r.Labels) {
		g.labels = append(g.labels, labelMatch{key, c.match(what+".labels."+key, r.Labels[key])})
	}
	for i, a := range r.Allow {
		ops, ok := groupActions[a]
		if !ok {
			c.fail(c.at(&r.Allow[i]), "%s.allow: unknown action %q (known: %s)",
				what, a, strings.Join(sortedKeys(groupActions), ", "))
		}
		for _, op := range ops {
			g.allow[op] = true
		}
	}
	g.signals = c.signals(what, r.KillSignals)
	if g.allow[OpContainerKill] && len(g.signals) == 0 {
		c.fail(r.Pos, "%s: kill is allowed but kill_signals is empty, so no kill could pass", what)
	}
	if rm := r.Remove; rm != nil {
		g.force, g.volumes = rm.Force, rm.Volumes
		if !g.allow[OpContainerRemove] {
			c.fail(rm.Pos, "%s.remove: options given but remove is not allowed", what)
		}
	}
	for _, e := range r.Exec {
		g.exec = append(g.exec, c.execRule(what, e))
	}
	if g.allow[OpExecCreate] && len(g.exec) == 0 {
		c.fail(r.Pos, "%s: exec is allowed but no exec rule says what may run", what)
	}
	if !g.allow[OpExecCreate] && len(g.exec) > 0 {
		c.fail(r.Pos, "%s: exec rules are given but exec is not in allow", what)
	}
	return g
}

func (c *compiler) signals(what string, names []string) map[int]string {
	out := make(map[int]string, len(names))
	for i, n := range names {
		num, ok := parseSignal(n)
		if !ok {
			c.fail(c.at(&names[i]), "%s.kill_signals: unknown signal %q", what, n)
			continue
		}
		out[num] = n
	}
	return out
}

// signalNumbers maps Linux signal names, without SIG, to their numbers.
var signalNumbers = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
	"FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
	"TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
	"TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26,
	"PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}

// parseSignal reads a signal the way the daemon does: a number, or a name
// in any case with or without SIG.
func parseSignal(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, n >= 1 && n <= 64
	}
	n, ok := signalNumbers[strings.TrimPrefix(strings.ToUpper(s), "SIG")]
	return n, ok
}

// signalList renders a group's signals for a message.
func (g *group) signalList() string {
	names := make([]string, 0, len(g.signals))
	for _, n := range g.signals {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
