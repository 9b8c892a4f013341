package filter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Explain writes the policy in plain sentences, grouped by operation, for a
// reviewer who does not read Go or run a daemon. With markdown set it
// writes a Markdown document for a review.
func (p *Policy) Explain(w io.Writer, name string, markdown bool) {
	d := &doc{w: w, md: markdown}
	d.heading(1, "What "+name+" allows")
	d.para(fmt.Sprintf("Policy SHA-256 %s. Everything not listed here is refused.", p.sha256))
	d.para(fmt.Sprintf("Requests may use unversioned paths or /v%s to /v%s.", p.window[0], p.window[1]))

	d.heading(2, "Calls without a target")
	for _, op := range []Op{OpPing, OpVersion} {
		d.item(fmt.Sprintf("%s: %s.", op, yesNo(p.system[op])))
	}

	d.heading(2, "Existing containers")
	if len(p.groups) == 0 {
		d.item("No container is visible and no existing container can be touched.")
	}
	for _, g := range p.groups {
		p.explainGroup(d, g)
	}

	d.heading(2, "Container create")
	if len(p.creates) == 0 {
		d.item("No container may be created.")
	}
	for _, r := range p.creates {
		d.item(r.explain())
	}

	p.explainNetworks(d)
	p.explainImages(d)

	d.heading(2, "Always refused, whatever the policy says")
	d.para("These operations are known by name and never forwarded: " +
		strings.Join(neverAllowed(), ", ") + ". Any path that is not an Engine API endpoint is refused too, " +
		"and so is any request that is not canonical (percent-encoding, .., //, repeated query keys, " +
		"an API version outside the window).")
}

func yesNo(b bool) string {
	if b {
		return "allowed"
	}
	return "refused"
}

// neverAllowed lists the known operations no policy can allow.
func neverAllowed() []string {
	seen := map[Op]bool{}
	var out []string
	for _, rs := range routes {
		for _, r := range rs {
			if !r.op.Allowable() && !seen[r.op] {
				seen[r.op] = true
				out = append(out, string(r.op))
			}
		}
	}
	sort.Strings(out)
	return out
}

var actionWords = []struct {
	op   Op
	word string
}{
	{OpContainerInspect, "listed and inspected"}, {OpContainerStart, "started"},
	{OpContainerStop, "stopped"}, {OpContainerRestart, "restarted"}, {OpContainerKill, "killed"},
	{OpContainerRemove, "removed"}, {OpContainerWait, "waited on"},
	{OpContainerLogs, "read in their logs"},
}

func (p *Policy) explainGroup(d *doc, g *group) {
	var members []string
	for _, l := range g.labels {
		members = append(members, labelPhrase(l.key, l.valueMatch))
	}
	var can []string
	for _, a := range actionWords {
		if !g.allow[a.op] {
			continue
		}
		word := a.word
		switch a.op {
		case OpContainerKill:
			word += " with " + orList(strings.Split(g.signalList(), ", ")) + " only"
		case OpContainerRemove:
			word += " (" + map[bool]string{true: "also while running", false: "only when stopped"}[g.force] +
				"; " + map[bool]string{true: "with", false: "never with"}[g.volumes] + " their volumes)"
		}
		can = append(can, word)
	}
	text := fmt.Sprintf("Group %s: containers labelled %s.", g.name, andList(members))
	if len(can) == 0 {
		text += " They may not be touched."
	} else {
		text += " They may be " + andList(can) + "."
	}
	if g.redactEnv {
		text += " Inspect answers hide the values of their environment."
	}
	d.item(text)
	for _, e := range g.exec {
		d.sub(e.explain(g.name))
	}
	switch {
	case len(g.exec) > 0 && g.execStartPinned:
		d.sub("Exec instances in these containers may be started and inspected only when their " +
			"command and user fit an exec rule.")
	case len(g.exec) > 0:
		d.sub("Exec instances in these containers may be started and inspected when they are not " +
			"privileged and have no terminal or standard input the rules do not allow, whatever their " +
			"command, so also one created on the daemon directly, not through the proxy " +
			"(exec_start_pinned is off).")
	}
}

func (e *execRule) explain(group string) string {
	args := make([]string, len(e.argv))
	for i, m := range e.argv {
		args[i] = argPhrase(m)
	}
	extra := "without a terminal or standard input"
	switch {
	case e.tty && e.stdin:
		extra = "with a terminal and standard input allowed"
	case e.tty:
		extra = "with a terminal allowed"
	case e.stdin:
		extra = "with standard input allowed"
	}
	return fmt.Sprintf("Exec rule %s: in %s containers, exactly this command may run, as user %q, %s, "+
		"not privileged, with no environment or working directory: %s.", e.name, group, e.user, extra,
		strings.Join(args, " "))
}

// argPhrase renders one argv element: short literals as they are, long
// ones (a script) by size and hash, patterns as patterns.
func argPhrase(m valueMatch) string {
	if m.re != nil {
		return "<matching " + m.src + ">"
	}
	if strings.Contains(m.exact, "\n") || len(m.exact) > 60 {
		sum := sha256.Sum256([]byte(m.exact))
		return fmt.Sprintf("<the %d-line script in the policy, sha256 %s>",
			strings.Count(m.exact, "\n"), hex.EncodeToString(sum[:6]))
	}
	return fmt.Sprintf("%q", m.exact)
}

func labelPhrase(key string, m valueMatch) string {
	if m.re != nil {
		return fmt.Sprintf("%s matching %s", key, m.src)
	}
	return fmt.Sprintf("%s=%s", key, m.exact)
}

func (r *createRule) explain() string {
	var labels []string
	for _, k := range sortedKeys(r.labels) {
		lt := r.labels[k]
		if lt.re != nil {
			labels = append(labels, fmt.Sprintf("%s matching %s", k, lt.src))
		} else {
			labels = append(labels, fmt.Sprintf("%s=%s", k, lt.tmpl))
		}
	}
	parts := []string{
		fmt.Sprintf("Rule %s: containers may be created only from %s", r.name, orList(r.images)),
		fmt.Sprintf("named to match %s", r.nameSrc),
		fmt.Sprintf("with exactly the labels %s", andList(labels)),
		"command " + templatesPhrase(r.cmd),
		"entrypoint " + templatesPhrase(r.entrypoint),
	}
	if len(r.env) > 0 {
		parts = append(parts, "environment variables "+andList(sortedKeys(r.env))+" (any value) and no others")
	} else {
		parts = append(parts, "no environment variables")
	}
	parts = append(parts, "joining network "+orList(r.networks)+" only, with no endpoint options")
	if len(r.binds) > 0 {
		parts = append(parts, "with exactly the bind mounts "+quoteList(r.binds))
	} else {
		parts = append(parts, "with no bind mounts")
	}
	if len(r.restart) > 0 {
		parts = append(parts, "restart policy "+orList(r.restart))
	}
	if h := r.healthcheck; h != nil {
		parts = append(parts, fmt.Sprintf("no healthcheck or exactly %s every %s (timeout %s, %d retries, "+
			"start period %s)", strings.Join(h.Test, " "), h.Interval, h.Timeout, h.Retries,
			h.StartPeriod.Round(time.Second)))
	}
	var may []string
	if len(r.securityOpt) > 0 {
		may = append(may, "security options "+andList(r.securityOpt))
	}
	if len(r.capDrop) > 0 {
		may = append(may, "dropping capabilities "+andList(r.capDrop))
	}
	if r.readOnly {
		may = append(may, "a read-only root filesystem")
	}
	if r.pidsMax > 0 {
		may = append(may, fmt.Sprintf("a process limit up to %d", r.pidsMax))
	}
	if r.memoryMax > 0 {
		may = append(may, fmt.Sprintf("a memory limit up to %d bytes", r.memoryMax))
	}
	if r.nanoCPUsMax > 0 {
		may = append(may, fmt.Sprintf("a CPU limit up to %g CPUs", float64(r.nanoCPUsMax)/1e9))
	}
	if len(may) > 0 {
		parts = append(parts, "and optionally "+andList(may))
	}
	return strings.Join(parts, ", ") + ". They belong to group " + r.group.name +
		". Every other create field (Privileged, CapAdd, Devices, Mounts, PidMode, PortBindings, User, ...) " +
		"must be empty."
}

func templatesPhrase(ts []template) string {
	if len(ts) == 0 {
		return "as the image sets it"
	}
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return quoteList(s)
}

func (p *Policy) explainNetworks(d *doc) {
	d.heading(2, "Networks")
	if len(p.networks) == 0 {
		d.item("No network is visible.")
		return
	}
	for _, name := range sortedKeys(p.networks) {
		nr := p.networks[name]
		text := fmt.Sprintf("Network %s: visible in lists and inspect.", name)
		if len(nr.connect) > 0 {
			var gs []string
			for _, g := range nr.connect {
				gs = append(gs, g.name)
			}
			text += " Containers of group " + orList(gs) +
				" may be connected and disconnected (no endpoint options, no forced disconnect)."
		}
		d.item(text)
	}
	d.item("Other networks are hidden and cannot be used.")
}

func (p *Policy) explainImages(d *doc) {
	d.heading(2, "Images")
	d.item("Pull: " + setPhrase(p.pull) + " (each with its tag or digest; never all tags).")
	d.item("Inspect: " + setPhrase(p.inspect) + ".")
	if p.imageList {
		d.item("List: allowed; the answer shows only the images that may be inspected.")
	} else {
		d.item("List: refused.")
	}
}

func setPhrase(set map[string]bool) string {
	if len(set) == 0 {
		return "nothing"
	}
	return andList(sortedKeys(set))
}

func andList(items []string) string { return joinList(items, "and") }
func orList(items []string) string  { return joinList(items, "or") }

func joinList(items []string, word string) string {
	switch len(items) {
	case 0:
		return "none"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + word + " " + items[len(items)-1]
}

// doc writes headings, paragraphs and list items as plain text or
// Markdown.
type doc struct {
	w  io.Writer
	md bool
}

func (d *doc) heading(level int, text string) {
	if d.md {
		fmt.Fprintf(d.w, "\n%s %s\n\n", strings.Repeat("#", level), text)
		return
	}
	if level == 1 {
		fmt.Fprintf(d.w, "%s\n%s\n", text, strings.Repeat("=", len(text)))
		return
	}
	fmt.Fprintf(d.w, "\n%s\n", text)
}

func (d *doc) para(text string) {
	if d.md {
		fmt.Fprintf(d.w, "%s\n\n", text)
		return
	}
	fmt.Fprintf(d.w, "%s\n", wrap(text, "", 96))
}

func (d *doc) item(text string) {
	fmt.Fprintln(d.w, wrap(text, "  - ", 96))
}

func (d *doc) sub(text string) {
	fmt.Fprintln(d.w, wrap(text, "      - ", 96))
}

// wrap breaks text into lines of at most width, the first prefixed, the
// rest indented to match.
func wrap(text, prefix string, width int) string {
	indent := strings.Repeat(" ", len(prefix))
	var b strings.Builder
	line := prefix
	for _, word := range strings.Fields(text) {
		if len(line)+len(word)+1 > width && strings.TrimSpace(line) != strings.TrimSpace(prefix) {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = indent
		}
		if line != prefix && line != indent {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}
