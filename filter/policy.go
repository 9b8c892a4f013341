package filter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"
)

// Policy is a compiled policy.yaml: immutable, safe for concurrent use. A
// reload builds a new Policy and swaps it in whole.
type Policy struct {
	sha256       string
	file         *File
	warnings     Problems
	window       [2]APIVersion
	system       map[Op]bool
	groups       []*group
	listKeys     []string // label keys every visible container has (listLabelKeys)
	creates      []*createRule
	networks     map[string]*networkRule
	pull         map[string]bool
	inspect      map[string]bool
	imageList    bool
	projectLabel string
}

// DefaultAPIWindow is the range of /vN.NN prefixes accepted when the policy
// does not set api_versions.
var DefaultAPIWindow = [2]APIVersion{{1, 41}, {1, 51}}

// SHA256 is the hex SHA-256 of the policy file's bytes.
func (p *Policy) SHA256() string { return p.sha256 }

// Warnings lists rules that are valid but wider than they look.
func (p *Policy) Warnings() Problems { return p.warnings }

// File returns the policy as written.
func (p *Policy) File() *File { return p.file }

// Load reads and compiles a policy file. A policy with any problem is
// refused; the error is a Problems listing all of them with positions.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy %q: %w", path, err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy %q: %w", path, err)
	}
	return p, nil
}

// Parse compiles policy text in three steps: decode strictly, apply
// defaults, validate every rule. All problems are reported together.
func Parse(data []byte) (*Policy, error) {
	root, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	d := decoder{pos: make(map[any]Pos)}
	f := new(File)
	d.decode(root, reflectValue(f))
	if len(d.problems) > 0 {
		return nil, d.problems
	}
	c := compiler{file: f, pos: d.pos}
	p := c.compile()
	c.placeholders(root)
	if len(c.errors) > 0 {
		sortProblems(c.errors)
		return nil, c.errors
	}
	sum := sha256.Sum256(data)
	p.sha256 = hex.EncodeToString(sum[:])
	p.warnings = c.warnings
	sortProblems(p.warnings)
	return p, nil
}

func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Pos, ps[j].Pos
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
}

// compiler validates a decoded File and builds the Policy.
type compiler struct {
	file     *File
	pos      map[any]Pos
	errors   Problems
	warnings Problems
}

// at returns the position a decoded value came from.
func (c *compiler) at(ptr any) Pos { return c.pos[ptr] }

func (c *compiler) fail(pos Pos, format string, args ...any) {
	c.errors = append(c.errors, Problem{Pos: pos, Message: fmt.Sprintf(format, args...)})
}

func (c *compiler) warn(pos Pos, format string, args ...any) {
	c.warnings = append(c.warnings, Problem{
		Pos: pos, Message: fmt.Sprintf(format, args...), Warning: true,
	})
}

// placeholder is what proxy policy migrate writes where the operator must
// fill in a value of their own.
const placeholder = "CHANGE-ME"

// placeholders warns of every value still holding the placeholder: such a
// policy loads, but it pins nothing real.
func (c *compiler) placeholders(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, placeholder) {
		c.warn(Pos{Line: n.Line, Column: n.Column}, "%q is a placeholder of policy migrate; "+
			"put the real value here", clip(n.Value))
	}
	for _, child := range n.Content {
		c.placeholders(child)
	}
}

func (c *compiler) compile() *Policy {
	f := c.file
	p := &Policy{file: f, window: DefaultAPIWindow, system: map[Op]bool{}}
	if f.Schema != 1 {
		c.fail(Pos{Line: 1, Column: 1}, "schema: 1 is required (found %d)", f.Schema)
	}
	if w := f.APIVersions; w != nil {
		p.window = c.window(w)
	}
	for i, s := range f.System {
		switch s {
		case "ping":
			p.system[OpPing] = true
		case "version":
			p.system[OpVersion] = true
		default:
			c.fail(c.at(&f.System[i]), "system: unknown call %q (known: ping, version)", s)
		}
	}
	p.groups = c.groups(f.Groups)
	p.listKeys = listLabelKeys(p.groups)
	p.creates = c.creates(f.Create, p.groups)
	p.networks = c.networks(f.Networks, p.groups)
	if im := f.Images; im != nil {
		p.pull = c.imageSet("images.pull", im.Pull)
		p.inspect = c.imageSet("images.inspect", im.Inspect)
		p.imageList = im.List
	}
	if a := f.Audit; a != nil {
		p.projectLabel = a.ProjectLabel
	}
	return p
}

func (c *compiler) window(w *VersionWindow) [2]APIVersion {
	lo, okLo := ParseAPIVersion(w.Min)
	hi, okHi := ParseAPIVersion(w.Max)
	switch {
	case !okLo:
		c.fail(w.Pos, "api_versions.min %q is not a version such as 1.41", w.Min)
	case !okHi:
		c.fail(w.Pos, "api_versions.max %q is not a version such as 1.51", w.Max)
	case hi.Less(lo):
		c.fail(w.Pos, "api_versions: min %s is above max %s", lo, hi)
	}
	return [2]APIVersion{lo, hi}
}

// sortedKeys returns a map's keys in order, so that problems and
// explanations come out the same way every time.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// valueMatch is a compiled Match.
type valueMatch struct {
	exact string
	re    *regexp.Regexp
	// src is the pattern as written, for messages.
	src string
}

func (m valueMatch) matches(s string) bool {
	if m.re != nil {
		return m.re.MatchString(s)
	}
	return s == m.exact
}

func (m valueMatch) String() string {
	if m.re != nil {
		return "matching " + m.src
	}
	return fmt.Sprintf("%q", m.exact)
}

// match compiles a Match; a pattern must match the whole value.
func (c *compiler) match(what string, m *Match) valueMatch {
	if m == nil {
		c.fail(Pos{}, "%s: a value is required", what)
		return valueMatch{}
	}
	if !m.IsPattern {
		return valueMatch{exact: m.Exact}
	}
	re := c.pattern(m.Pos, what, m.Pattern)
	return valueMatch{re: re, src: m.Pattern}
}

// pattern compiles a regular expression anchored at both ends.
func (c *compiler) pattern(pos Pos, what, expr string) *regexp.Regexp {
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		c.fail(pos, "%s: pattern %q does not compile: %v", what, expr, err)
		return nil
	}
	if !strings.HasPrefix(expr, "^") || !strings.HasSuffix(expr, "$") {
		c.warn(pos, "%s: pattern %q has no ^...$ anchors; sockpin matches whole values, "+
			"so it means ^(?:%s)$", what, expr, expr)
	}
	if strings.Contains(expr, ".*") || strings.Contains(expr, ".+") {
		c.warn(pos, "%s: pattern %q accepts any characters in part of the value", what, expr)
	}
	return re
}

// normalizeImage returns the normalised form of an image reference, with an
// implicit :latest made explicit.
func normalizeImage(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	return reference.TagNameOnly(named).String(), nil
}

// hasTagOrDigest reports whether a reference names its tag or digest
// itself instead of meaning :latest.
func hasTagOrDigest(ref string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	return tagged || digested
}

func (c *compiler) imageSet(what string, refs []string) map[string]bool {
	set := make(map[string]bool, len(refs))
	for i, ref := range refs {
		pos := c.at(&refs[i])
		norm, err := normalizeImage(ref)
		if err != nil {
			c.fail(pos, "%s: image reference %q does not normalize: %v", what, ref, err)
			continue
		}
		if !hasTagOrDigest(ref) {
			c.warn(pos, "%s: image %q names no tag or digest; it means %s", what, ref, norm)
		}
		set[norm] = true
	}
	return set
}

// Summary is a one-line account of what the policy holds.
func (p *Policy) Summary() string {
	var sys []string
	for _, op := range []Op{OpPing, OpVersion} {
		if p.system[op] {
			sys = append(sys, strings.TrimPrefix(string(op), "system."))
		}
	}
	return fmt.Sprintf("system calls %s; %d container group(s); %d create rule(s); %d network(s); "+
		"%d pullable image(s); API /v%s to /v%s", andList(sys), len(p.groups), len(p.creates),
		len(p.networks), len(p.pull), p.window[0], p.window[1])
}
