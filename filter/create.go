package filter

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// createRule is a compiled CreateRule.
type createRule struct {
	name        string
	group       *group
	namePattern *regexp.Regexp
	nameSrc     string
	images      []string
	labels      map[string]labelTemplate
	cmd         []template
	entrypoint  []template
	env         map[string]bool
	networks    []string
	binds       []string
	restart     []string
	healthcheck *container.HealthConfig
	securityOpt []string
	capDrop     []string
	readOnly    bool
	pidsMax     int64
	memoryMax   int64
	nanoCPUsMax int64
}

// labelTemplate is a label value: a template expanded from the name's
// captures, or a pattern.
type labelTemplate struct {
	tmpl template
	re   *regexp.Regexp
	src  string
}

// template is text with ${var} references to named groups of the name
// pattern.
type template string

func (t template) expand(vars map[string]string) string {
	s := string(t)
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		b.WriteString(s[:i])
		b.WriteString(vars[s[i+2:i+j]])
		s = s[i+j+1:]
	}
}

// vars lists the variables a template refers to, or an error when a
// reference is not closed.
func (t template) vars() ([]string, error) {
	var out []string
	s := string(t)
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return out, nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q has ${ without a closing }", string(t))
		}
		out = append(out, s[i+2:i+j])
		s = s[i+j+1:]
	}
}

var (
	envName        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	noNewPrivs     = regexp.MustCompile(`^no-new-privileges(?:[:=]true)?$`)
	restartPolicys = []string{"no", "always", "unless-stopped", "on-failure"}
)

func (c *compiler) creates(rules []*CreateRule, groups []*group) []*createRule {
	var out []*createRule
	seen := map[string]bool{}
	for i, r := range rules {
		if r == nil {
			c.fail(Pos{}, "create[%d]: the rule is empty", i)
			continue
		}
		if r.Rule == "" {
			c.fail(r.Pos, "create[%d]: every create rule needs a name (rule: ...)", i)
		} else if seen[r.Rule] {
			c.fail(r.Pos, "create: rule name %q is used twice", r.Rule)
		}
		seen[r.Rule] = true
		out = append(out, c.createRule(r, groups))
	}
	return out
}

func (c *compiler) createRule(r *CreateRule, groups []*group) *createRule {
	what := "create " + r.Rule
	cr := &createRule{
		name:        r.Rule,
		env:         map[string]bool{},
		readOnly:    r.ReadOnlyRootfs,
		pidsMax:     r.PidsLimit,
		memoryMax:   int64(r.Memory),
		nanoCPUsMax: int64(math.Round(r.CPUs * 1e9)),
		securityOpt: r.SecurityOpt,
		capDrop:     r.CapDrop,
		restart:     r.RestartPolicy,
	}
	if r.Name == "" {
		c.fail(r.Pos, "%s: name (a pattern for the container name) is required", what)
	} else {
		cr.namePattern = c.pattern(c.at(&r.Name), what+".name", r.Name)
		cr.nameSrc = r.Name
	}
	vars := map[string]bool{}
	if cr.namePattern != nil {
		for _, n := range cr.namePattern.SubexpNames() {
			vars[n] = n != ""
		}
	}
	if len(r.Image) == 0 {
		c.fail(r.Pos, "%s: image must list at least one pinned image", what)
	}
	for ref := range c.imageSet(what+".image", r.Image) {
		cr.images = append(cr.images, ref)
	}
	sort.Strings(cr.images)
	cr.labels = c.createLabels(what, r, vars)
	cr.cmd = c.templates(what+".cmd", r.Cmd, vars)
	cr.entrypoint = c.templates(what+".entrypoint", r.Entrypoint, vars)
	for i, e := range r.Env {
		if !envName.MatchString(e) {
			c.fail(c.at(&r.Env[i]), "%s.env: %q is not a variable name", what, e)
		}
		cr.env[e] = true
	}
	c.createHost(what, r, cr)
	cr.group = c.createGroup(what, r, cr, groups)
	return cr
}

func (c *compiler) createLabels(what string, r *CreateRule, vars map[string]bool) map[string]labelTemplate {
	out := make(map[string]labelTemplate, len(r.Labels))
	for _, key := range sortedKeys(r.Labels) {
		m := r.Labels[key]
		if m == nil {
			c.fail(r.Pos, "%s.labels.%s: a value is required", what, key)
			continue
		}
		if m.IsPattern {
			out[key] = labelTemplate{re: c.pattern(m.Pos, what+".labels."+key, m.Pattern), src: m.Pattern}
			continue
		}
		t := template(m.Exact)
		c.checkVars(m.Pos, what+".labels."+key, t, vars)
		out[key] = labelTemplate{tmpl: t}
	}
	return out
}

func (c *compiler) templates(what string, in []string, vars map[string]bool) []template {
	out := make([]template, len(in))
	for i, s := range in {
		out[i] = template(s)
		c.checkVars(c.at(&in[i]), what, out[i], vars)
	}
	return out
}

func (c *compiler) checkVars(pos Pos, what string, t template, vars map[string]bool) {
	names, err := t.vars()
	if err != nil {
		c.fail(pos, "%s: %v", what, err)
	}
	for _, n := range names {
		if !vars[n] {
			c.fail(pos, "%s: ${%s} is not a named group of the name pattern", what, n)
		}
	}
}

func (c *compiler) createHost(what string, r *CreateRule, cr *createRule) {
	if len(r.Network) == 0 {
		c.fail(r.Pos, "%s: network must list the network(s) new containers join", what)
	}
	cr.networks = r.Network
	cr.binds = slices.Clone(r.Binds)
	sort.Strings(cr.binds)
	for i, b := range r.Binds {
		if strings.HasPrefix(b, "/") {
			c.warn(c.at(&r.Binds[i]), "%s.binds: %q mounts a path of the host", what, b)
		}
		if !strings.HasSuffix(b, ":ro") {
			c.warn(c.at(&r.Binds[i]), "%s.binds: %q is writable (no :ro)", what, b)
		}
	}
	for i, p := range r.RestartPolicy {
		if !slices.Contains(restartPolicys, p) {
			c.fail(c.at(&r.RestartPolicy[i]), "%s.restart_policy: unknown policy %q (known: %s)",
				what, p, strings.Join(restartPolicys, ", "))
		}
	}
	for i, o := range r.SecurityOpt {
		if !noNewPrivs.MatchString(o) {
			c.fail(c.at(&r.SecurityOpt[i]), "%s.security_opt: only no-new-privileges may be "+
				"allowed; %q would weaken the container", what, o)
		}
	}
	if h := r.Healthcheck; h != nil {
		if len(h.Test) == 0 {
			c.fail(h.Pos, "%s.healthcheck: test is required", what)
		}
		cr.healthcheck = &container.HealthConfig{
			Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		}
	}
	if r.PidsLimit < 0 || r.Memory < 0 || r.CPUs < 0 {
		c.fail(r.Pos, "%s: limits must not be negative", what)
	}
}

// createGroup checks that what the rule creates belongs to its group, so a
// client can act on the containers it is allowed to create.
func (c *compiler) createGroup(what string, r *CreateRule, cr *createRule, groups []*group) *group {
	if r.Group == "" {
		c.fail(r.Pos, "%s: group (the group new containers belong to) is required", what)
		return nil
	}
	var g *group
	for _, cand := range groups {
		if cand.name == r.Group {
			g = cand
		}
	}
	if g == nil {
		c.fail(c.at(&r.Group), "%s: group %q is not defined under groups", what, r.Group)
		return nil
	}
	for _, l := range g.labels {
		lt, ok := cr.labels[l.key]
		if !ok {
			c.fail(r.Pos, "%s: group %s requires label %s, which the rule does not set",
				what, g.name, l.key)
			continue
		}
		literal := lt.re == nil && !strings.Contains(string(lt.tmpl), "${")
		if literal && !l.matches(string(lt.tmpl)) {
			c.fail(r.Pos, "%s: label %s=%q would not satisfy group %s (%s)",
				what, l.key, lt.tmpl, g.name, l.valueMatch)
		}
	}
	return g
}

// check decides whether a create request fits the rule. It returns the
// reason for a refusal, or "" when the request fits. req is not modified.
// Fields the rule does not govern are checked first, so that a refusal
// names the dangerous field (HostConfig.Privileged) rather than a detail.
func (r *createRule) check(name string, req *container.CreateRequest) string {
	if req.Config == nil {
		return "the body has no container configuration"
	}
	// The checks that do not depend on each other are all reported, so
	// that one refusal says what is wrong with the request.
	var problems []string
	for _, reason := range []string{r.ungoverned(req), r.checkImage(req.Config.Image), r.checkName(name)} {
		if reason != "" {
			problems = append(problems, reason)
		}
	}
	if len(problems) > 0 {
		return strings.Join(problems, "; ")
	}
	m := r.namePattern.FindStringSubmatch(name)
	vars := make(map[string]string)
	for i, n := range r.namePattern.SubexpNames() {
		if n != "" {
			vars[n] = m[i]
		}
	}
	if reason := r.checkConfig(req.Config, vars); reason != "" {
		return reason
	}
	if req.HostConfig == nil {
		return "HostConfig.NetworkMode is required"
	}
	if reason := r.checkHost(req.HostConfig); reason != "" {
		return reason
	}
	return r.checkEndpoints(req)
}

// ungoverned finds fields that are set although the rule does not name
// them. It works on copies: the fields the rule governs are cleared, and
// whatever is left set is refused. Host settings come first in the
// message: they are where privilege comes from.
func (r *createRule) ungoverned(req *container.CreateRequest) string {
	const max = 4
	var set []string
	if req.HostConfig != nil {
		hc := *req.HostConfig
		hc.NetworkMode, hc.Binds, hc.RestartPolicy = "", nil, container.RestartPolicy{}
		hc.SecurityOpt, hc.CapDrop = nil, nil
		hc.PidsLimit, hc.Memory, hc.NanoCPUs = nil, 0, 0
		if r.readOnly {
			hc.ReadonlyRootfs = false
		}
		set = setFields(reflect.ValueOf(hc), "HostConfig", "", max)
	}
	cfg := *req.Config
	cfg.Image, cfg.Labels, cfg.Cmd, cfg.Entrypoint, cfg.Env, cfg.Healthcheck =
		"", nil, nil, nil, nil, nil
	set = append(set, setFields(reflect.ValueOf(cfg), "", "", max-len(set))...)
	switch {
	case len(set) == 0:
		return ""
	case len(set) == 1:
		return fmt.Sprintf("field %s is not allowed", set[0])
	}
	return fmt.Sprintf("fields %s are not allowed", strings.Join(set, ", "))
}

// checkImage checks the image against the rule's pinned references.
func (r *createRule) checkImage(image string) string {
	img, err := normalizeImage(image)
	if err != nil || !slices.Contains(r.images, img) {
		return fmt.Sprintf("image %q is not pinned (allowed: %s)", clip(image), strings.Join(r.images, ", "))
	}
	return ""
}

// checkName checks the container name against the rule's pattern.
func (r *createRule) checkName(name string) string {
	switch {
	case name == "":
		return "a container name is required"
	case !r.namePattern.MatchString(name):
		return fmt.Sprintf("container name %q does not match %s", clip(name), r.nameSrc)
	}
	return ""
}

// checkConfig checks the other container configuration fields the rule
// pins; vars are the parts of the name the rule's patterns use.
func (r *createRule) checkConfig(cfg *container.Config, vars map[string]string) string {
	if reason := r.checkLabels(cfg.Labels, vars); reason != "" {
		return reason
	}
	if want := expandAll(r.cmd, vars); !sameArgv(cfg.Cmd, want) {
		return fmt.Sprintf("Cmd must be %s", quoteList(want))
	}
	if want := expandAll(r.entrypoint, vars); !sameArgv(cfg.Entrypoint, want) {
		return fmt.Sprintf("Entrypoint must be %s", quoteList(want))
	}
	if reason := r.checkEnv(cfg.Env); reason != "" {
		return reason
	}
	if h := cfg.Healthcheck; h != nil && !sameHealthcheck(h, r.healthcheck) {
		return "Healthcheck differs from the one the policy pins"
	}
	return ""
}

func (r *createRule) checkLabels(labels map[string]string, vars map[string]string) string {
	for _, key := range sortedKeys(r.labels) {
		lt := r.labels[key]
		v, ok := labels[key]
		switch {
		case !ok:
			return fmt.Sprintf("label %s is required", key)
		case lt.re != nil && !lt.re.MatchString(v):
			return fmt.Sprintf("label %s=%q does not match %s", key, clip(v), lt.src)
		case lt.re == nil && v != lt.tmpl.expand(vars):
			return fmt.Sprintf("label %s must be %q", key, lt.tmpl.expand(vars))
		}
	}
	for _, key := range sortedKeys(labels) {
		if _, ok := r.labels[key]; !ok {
			return fmt.Sprintf("label %q is not allowed", clip(key))
		}
	}
	return ""
}

func (r *createRule) checkEnv(env []string) string {
	seen := make(map[string]bool, len(env))
	for _, e := range env {
		k, _, ok := strings.Cut(e, "=")
		switch {
		case !ok:
			return fmt.Sprintf("environment entry %q has no value", clip(e))
		case !r.env[k]:
			return fmt.Sprintf("environment variable %s is not allowed", clip(k))
		case seen[k]:
			return fmt.Sprintf("environment variable %s is set twice", clip(k))
		}
		seen[k] = true
	}
	return ""
}

// checkHost checks the host configuration fields the rule pins.
func (r *createRule) checkHost(hc *container.HostConfig) string {
	if hc.NetworkMode == "" {
		return "HostConfig.NetworkMode is required"
	}
	if nm := string(hc.NetworkMode); !slices.Contains(r.networks, nm) {
		return fmt.Sprintf("network %q is not allowed (allowed: %s)",
			clip(nm), strings.Join(r.networks, ", "))
	}
	binds := slices.Clone(hc.Binds)
	sort.Strings(binds)
	if !slices.Equal(binds, r.binds) {
		return fmt.Sprintf("Binds must be exactly %s", quoteList(r.binds))
	}
	rp := hc.RestartPolicy
	if rp.MaximumRetryCount != 0 || (rp.Name != "" || len(r.restart) > 0) &&
		!slices.Contains(r.restart, string(rp.Name)) {
		return fmt.Sprintf("restart policy %q is not allowed (allowed: %s)",
			clip(string(rp.Name)), strings.Join(r.restart, ", "))
	}
	for _, o := range hc.SecurityOpt {
		if !slices.Contains(r.securityOpt, o) {
			return fmt.Sprintf("security option %q is not allowed", clip(o))
		}
	}
	for _, cp := range hc.CapDrop {
		if !slices.Contains(r.capDrop, cp) {
			return fmt.Sprintf("dropping capability %q is not allowed", clip(cp))
		}
	}
	return r.checkLimits(hc)
}

func (r *createRule) checkLimits(hc *container.HostConfig) string {
	if p := hc.PidsLimit; p != nil && (*p <= 0 || *p > r.pidsMax) {
		return fmt.Sprintf("HostConfig.PidsLimit %d is not allowed (at most %d)", *p, r.pidsMax)
	}
	if hc.Memory < 0 || hc.Memory > r.memoryMax {
		return fmt.Sprintf("HostConfig.Memory %d is not allowed (at most %d)", hc.Memory, r.memoryMax)
	}
	if hc.NanoCPUs < 0 || hc.NanoCPUs > r.nanoCPUsMax {
		return fmt.Sprintf("HostConfig.NanoCpus %d is not allowed (at most %d)",
			hc.NanoCPUs, r.nanoCPUsMax)
	}
	return ""
}

// checkEndpoints allows NetworkingConfig only as an empty entry for the
// network the container joins: aliases, static addresses, links and driver
// options could take over another service's name or address.
func (r *createRule) checkEndpoints(req *container.CreateRequest) string {
	nc := req.NetworkingConfig
	if nc == nil {
		return ""
	}
	for _, name := range sortedKeys(nc.EndpointsConfig) {
		if name != string(req.HostConfig.NetworkMode) {
			return fmt.Sprintf("the container may join only network %q", req.HostConfig.NetworkMode)
		}
		ep := nc.EndpointsConfig[name]
		if ep == nil {
			continue
		}
		path := "NetworkingConfig.EndpointsConfig." + name
		if f := firstSet(reflect.ValueOf(*ep), path); f != "" {
			return fmt.Sprintf("field %s is not allowed", f)
		}
	}
	return ""
}

func sameHealthcheck(a, b *container.HealthConfig) bool {
	return b != nil && slices.Equal(a.Test, b.Test) && a.Interval == b.Interval &&
		a.Timeout == b.Timeout && a.StartPeriod == b.StartPeriod &&
		a.StartInterval == b.StartInterval && a.Retries == b.Retries
}

// sameArgv compares a command with the pinned one. When none is pinned,
// only an absent command means the image's: the daemon keeps an empty
// list ([]) as an empty command instead of the image's entrypoint.
func sameArgv(got, want []string) bool {
	if want == nil {
		return got == nil
	}
	return slices.Equal(got, want)
}

func expandAll(ts []template, vars map[string]string) []string {
	if len(ts) == 0 {
		return nil
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.expand(vars)
	}
	return out
}

func quoteList(items []string) string {
	if len(items) == 0 {
		return "empty"
	}
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
