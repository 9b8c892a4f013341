package filter

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// visible reports whether a container with these labels may be seen.
func (p *Policy) visible(labels map[string]string) bool {
	return p.groupFor(OpContainerInspect, labels) != nil
}

// groupFor returns the first group that holds a container with these
// labels and allows op on it.
func (p *Policy) groupFor(op Op, labels map[string]string) *group {
	return holding(p.groupsAllowing(op, nil), labels)
}

func (p *Policy) decideContainerList(call *Call) (*Decision, error) {
	if p.groupsAllowing(OpContainerList, nil) == nil {
		return refuse(call.Op, RuleDefaultDeny, "no group allows inspect, so no container is visible"), nil
	}
	if reason := checkInt(call.Query, "limit"); reason != "" {
		return malformed(call.Op, "%s", reason), nil
	}
	filters, reason := checkListFilters(call.Query["filters"])
	if reason != "" {
		return refuse(call.Op, RuleDefaultDeny, "%s", reason), nil
	}
	// The daemon would measure the disk use of every container the filters
	// match, hidden ones too: slow, and its time would tell that they exist.
	if boolParam(call.Query["size"]) {
		return refuse(call.Op, RuleDefaultDeny, "container list with size is not supported"), nil
	}
	// The daemon would apply limit before the proxy drops what the client
	// may not see, so a hidden container that matched the filters would
	// take a place and show by the answer's length that it exists. The
	// proxy asks for every match instead (a limit includes stopped
	// containers, as all=1 does) and keeps the first limit visible ones:
	// the daemon's answer is newest first.
	limit, _ := strconv.Atoi(call.Query["limit"])
	query := maps.Clone(call.Query)
	if _, ok := query["limit"]; ok {
		delete(query, "limit")
		if limit > 0 {
			query["all"] = "1"
		}
	}
	// The daemon applies the client's filters to every container; those
	// without a label key that every visible container has are left out by
	// the daemon itself, so that filtering on what they carry (a label
	// value, a name, a state) shows nothing of them, not even in how long
	// the answer takes.
	if len(p.listKeys) > 0 {
		withKeys, err := withLabelKeys(filters, p.listKeys)
		if err != nil {
			return refuse(call.Op, RuleDefaultDeny, "%v", err), nil
		}
		query["filters"] = withKeys
	}
	d := allow(call.Op, "visible-containers")
	d.Path = prefix(call) + "/containers/json"
	d.Query = encodeQuery(query)
	d.narrow = func(body []byte) ([]byte, error) {
		kept := 0
		return narrowArray(body, func(elem []byte) ([]byte, error) {
			if limit > 0 && kept == limit {
				return nil, nil
			}
			f, err := scanContainer(elem)
			if err != nil {
				return nil, err
			}
			labels := rawLabels(f.labels)
			for _, g := range p.groups {
				if g.allow[OpContainerInspect] && g.containsFunc(labels.get) {
					kept++
					return p.narrowContainer(elem, &f, false)
				}
			}
			return nil, nil
		})
	}
	return d, nil
}

// listFilters are the container list filters a client may use. The others
// (before, since, ancestor, network, volume, ...) name other objects, and
// the daemon's error for one that does not exist would tell the client
// what exists; id matches a prefix only when no other container shares
// it, so whether a visible container is listed would tell of hidden ones.
var listFilters = map[string]bool{"label": true, "name": true, "status": true,
	"health": true, "exited": true}

// listLabelKeys are the label keys every group that lets a client see
// containers requires, sorted.
func listLabelKeys(groups []*group) []string {
	var keys []string
	first := true
	for _, g := range groups {
		if !g.allow[OpContainerList] {
			continue
		}
		var own []string
		for _, l := range g.labels {
			if first || slices.Contains(keys, l.key) {
				own = append(own, l.key)
			}
		}
		keys, first = own, false
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// withLabelKeys returns the list filters f (checked by checkListFilters;
// nil for none) with a label filter for each of keys added, encoded:
// containers without the key do not match.
func withLabelKeys(f map[string]json.RawMessage, keys []string) (string, error) {
	if f == nil {
		f = map[string]json.RawMessage{}
	}
	labels := map[string]bool{}
	if v, ok := f["label"]; ok {
		// The label filter comes as a list of terms or, from Docker's
		// Go client, as an object of terms set to true.
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			if err := json.Unmarshal(v, &labels); err != nil {
				return "", errors.New("the label filter is neither a list nor an object of terms")
			}
		}
		for _, term := range list {
			labels[term] = true
		}
	}
	for _, k := range keys {
		labels[k] = true
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return "", err
	}
	f["label"] = b
	out, err := json.Marshal(f)
	return string(out), err
}

// checkListFilters decodes a container list's filters (nil for none) and
// checks that each is one a client may use.
func checkListFilters(raw string) (map[string]json.RawMessage, string) {
	if raw == "" {
		return nil, ""
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &f); err != nil || f == nil {
		return nil, "filters is not a JSON object"
	}
	for _, k := range sortedKeys(f) {
		if !listFilters[k] {
			return nil, fmt.Sprintf("list filter %q is not allowed", clip(k))
		}
	}
	return f, ""
}

// narrowArray keeps the elements of a JSON array that keep returns, as
// keep returns them (nil drops an element).
func narrowArray(body []byte, keep func([]byte) ([]byte, error)) ([]byte, error) {
	out := make([]byte, 0, len(body))
	out = append(out, '[')
	n := 0
	err := arrayElements(body, func(elem []byte) error {
		kept, err := keep(elem)
		if err != nil || kept == nil {
			return err
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, kept...)
		n++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("narrowing list answer: %w", err)
	}
	return append(out, ']', '\n'), nil
}

// keepIf adapts a yes-or-no test to narrowArray.
func keepIf(test func([]byte) (bool, error)) func([]byte) ([]byte, error) {
	return func(elem []byte) ([]byte, error) {
		ok, err := test(elem)
		if !ok || err != nil {
			return nil, err
		}
		return elem, nil
	}
}

// groupsAllowing lists the groups that allow op and, when accept is set,
// whose own options accept the call. A call no group accepts is refused
// before its target is looked up.
func (p *Policy) groupsAllowing(op Op, accept func(*group) bool) []*group {
	var out []*group
	for _, g := range p.groups {
		if g.allow[op] && (accept == nil || accept(g)) {
			out = append(out, g)
		}
	}
	return out
}

// noSuchContainer answers for a container that does not exist or that the
// client may not see, alike.
func noSuchContainer(ref string) string {
	return fmt.Sprintf("sockpin: no container %q that this client may see", clip(ref))
}

// holding returns the first of groups that holds a container with these
// labels, or nil.
func holding(groups []*group, labels map[string]string) *group {
	for _, g := range groups {
		if g.contains(labels) {
			return g
		}
	}
	return nil
}

var containerActions = map[Op]string{
	OpContainerStart: "/start", OpContainerStop: "/stop", OpContainerRestart: "/restart",
	OpContainerKill: "/kill", OpContainerRemove: "", OpContainerWait: "/wait",
	OpContainerInspect: "/json", OpContainerLogs: "/logs",
}

var waitConditions = map[string]bool{"": true, "not-running": true, "next-exit": true, "removed": true}

func (p *Policy) decideContainer(ctx context.Context, call *Call, r Resolver) (*Decision, error) {
	op, ref := call.Op, call.Params[0]
	if !refPattern.MatchString(ref) {
		return malformed(op, "container reference %q is malformed", clip(ref)), nil
	}
	accept, reason := queryAcceptor(call)
	if reason != "" {
		return malformed(op, "%s", reason), nil
	}
	candidates := p.groupsAllowing(op, accept)
	if len(candidates) == 0 {
		return refuse(op, RuleDefaultDeny, "%s", noGroupReason(p, call)), nil
	}
	c, err := p.lookupContainer(ctx, r, answerVersion(call, op == OpContainerInspect), ref,
		op == OpContainerInspect)
	if err != nil {
		return resolved(op, err, noSuchContainer(ref))
	}
	g := holding(candidates, c.Labels)
	var d *Decision
	switch {
	case g == nil && !p.visible(c.Labels):
		d = hidden(op, noSuchContainer(ref), "container %q is in no group that allows %s",
			clip(ref), describe(call))
	case g == nil:
		d = refuse(op, RuleDefaultDeny, "container %q is in no group that allows %s",
			clip(ref), describe(call))
	default:
		d = allow(op, g.name)
	}
	// The audit line names the target, refused or not; the client's
	// message never does.
	d.ContainerID, d.Project = c.ID, c.Labels[p.projectLabel]
	if !d.Allowed {
		return d, nil
	}
	if op == OpContainerInspect {
		d.Answer, err = p.narrowContainer(c.Inspect, c.fields, g.redactEnv)
		return d, err
	}
	d.Path = prefix(call) + "/containers/" + c.ID + containerActions[op]
	d.Query = encodeQuery(call.Query)
	return d, nil
}

// lookupContainer resolves a container reference as the daemon does, in
// the world the client sees. A name or full ID goes to the daemon. A
// reference that could be an ID prefix (1 to 63 hex digits) is resolved
// against the visible containers alone, from one list of every container:
// by exact name first, then by a prefix that only one of them has. Hidden
// containers then neither make a prefix ambiguous nor shadow it with their
// name, and such a lookup costs the same whatever hidden containers exist.
func (p *Policy) lookupContainer(ctx context.Context, r Resolver, version, ref string, inspect bool) (*Container, error) {
	if !hexPrefix(ref) {
		return r.Container(ctx, version, ref, inspect)
	}
	all, err := r.ListContainers(ctx, version)
	if err != nil {
		return nil, err
	}
	var byName, byPrefix *Container
	prefixed := 0
	for _, c := range all {
		if !p.visible(c.Labels) {
			continue
		}
		if slices.Contains(c.Names, "/"+ref) {
			byName = c
		}
		if strings.HasPrefix(c.ID, ref) {
			byPrefix, prefixed = c, prefixed+1
		}
	}
	switch {
	case byName != nil:
		return r.Container(ctx, version, byName.ID, inspect)
	case prefixed == 1:
		return r.Container(ctx, version, byPrefix.ID, inspect)
	}
	return nil, notFound("No such container: %s", ref)
}

// hexPrefix reports whether ref can be a container ID prefix: 1 to 63
// lowercase hex digits.
func hexPrefix(ref string) bool {
	if len(ref) == 0 || len(ref) >= 64 {
		return false
	}
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// queryAcceptor checks the query of a container operation. It returns a
// reason when the query is malformed, and otherwise a test of whether a
// group's options (signals, remove flags) accept it.
func queryAcceptor(call *Call) (func(*group) bool, string) {
	q := call.Query
	switch call.Op {
	case OpContainerKill:
		sig, ok := parseSignal(q["signal"])
		if q["signal"] == "" {
			sig, ok = 9, true // the daemon's default is SIGKILL
		}
		if !ok {
			return nil, fmt.Sprintf("signal %q is not a signal", clip(q["signal"]))
		}
		return func(g *group) bool { return g.signals[sig] != "" }, ""
	case OpContainerStop, OpContainerRestart:
		if reason := checkInt(q, "t"); reason != "" {
			return nil, reason
		}
		s, set := q["signal"]
		if !set {
			return nil, ""
		}
		sig, ok := parseSignal(s)
		if !ok {
			return nil, fmt.Sprintf("signal %q is not a signal", clip(s))
		}
		return func(g *group) bool { return g.signals[sig] != "" }, ""
	case OpContainerRemove:
		force, vols, link := boolParam(q["force"]), boolParam(q["v"]), boolParam(q["link"])
		return func(g *group) bool {
			return !link && (!force || g.force) && (!vols || g.volumes)
		}, ""
	case OpContainerWait:
		if !waitConditions[q["condition"]] {
			return nil, fmt.Sprintf("wait condition %q is unknown", clip(q["condition"]))
		}
	case OpContainerInspect:
		if boolParam(q["size"]) {
			return nil, "inspect with size is not supported"
		}
	}
	return nil, ""
}

// describe names an operation with the options that matter, for refusals.
func describe(call *Call) string {
	q := call.Query
	switch call.Op {
	case OpContainerKill:
		if q["signal"] == "" {
			return "kill with SIGKILL (no signal given)"
		}
		return fmt.Sprintf("kill with signal %s", clip(q["signal"]))
	case OpContainerStop, OpContainerRestart:
		if s, ok := q["signal"]; ok {
			return fmt.Sprintf("%s with signal %s", call.Op, clip(s))
		}
	case OpContainerRemove:
		var opts []string
		for _, k := range []string{"force", "v", "link"} {
			if boolParam(q[k]) {
				opts = append(opts, k)
			}
		}
		if len(opts) > 0 {
			return "remove with " + strings.Join(opts, ", ")
		}
	}
	return string(call.Op)
}

func noGroupReason(p *Policy, call *Call) string {
	if len(p.groupsAllowing(call.Op, nil)) == 0 {
		return fmt.Sprintf("no group allows %s", call.Op)
	}
	return fmt.Sprintf("no group allows %s", describe(call))
}

// narrowContainer removes from a container's inspect answer or list entry
// what the client may not see: the values of Config.Env (when the group
// says so), the IDs of exec instances waiting in it (ExecIDs), its
// endpoints on networks the policy does not name (with the legacy top-level
// fields that repeat the default bridge's), the HostConfig fields that name
// such a network or other containers, and legacy link names among its
// Names. An answer with nothing to remove is passed on as it came. f are
// the fields of body when they have been found already.
func (p *Policy) narrowContainer(body []byte, f *containerFields, redactEnv bool) ([]byte, error) {
	if f == nil {
		scanned, err := scanContainer(body)
		if err != nil {
			return nil, fmt.Errorf("narrowing container answer: %w", err)
		}
		f = &scanned
	}
	execs := f.execIDs
	hidden, linked, err := p.endpointRefs(f.networkSettings)
	if err != nil {
		return nil, fmt.Errorf("narrowing container answer: %w", err)
	}
	hcHidden, joined, err := p.hostConfigHidden(f.hostConfig)
	if err != nil {
		return nil, fmt.Errorf("narrowing container answer: %w", err)
	}
	links := linkNames(f.names)
	if !redactEnv && (execs == nil || string(execs) == "null") && len(hidden) == 0 && !hcHidden && !links &&
		!joined && len(linked) == 0 {
		return body, nil
	}
	// The answer is edited in place, member by member in the daemon's
	// order, so that an edited answer looks like any other.
	edits := memberEdits{}
	if execs != nil {
		edits["ExecIDs"] = replaceWith("null")
	}
	config := memberEdits{}
	if redactEnv {
		config["Env"] = redactEnvValues
	}
	if joined {
		// A container that joins another's network namespace takes its
		// hostname and its resolv.conf, hostname and hosts files, whose
		// paths hold that container's ID.
		for _, key := range joinedNamespaceRefs {
			edits[key] = redactString
		}
		config["Hostname"], config["Domainname"] = redactString, redactString
	}
	if len(config) > 0 {
		edits["Config"] = editEach(config)
	}
	network := memberEdits{}
	if len(hidden) > 0 || len(linked) > 0 {
		endpoints := memberEdits{}
		for _, n := range hidden {
			endpoints[n] = dropMember
		}
		// Legacy links of an endpoint name the linked containers.
		for _, n := range linked {
			endpoints[n] = editEach(memberEdits{"Links": replaceWith("null")})
		}
		network["Networks"] = editEachKey(endpoints)
	}
	if slices.Contains(hidden, "bridge") {
		for key, zero := range legacyEndpoint {
			network[key] = replaceWith(zero)
		}
	}
	if len(network) > 0 {
		edits["NetworkSettings"] = editEach(network)
	}
	if hcHidden {
		edits["HostConfig"] = editEach(p.hostConfigEdits())
	}
	if links {
		edits["Names"] = dropLinkNames
	}
	out, err := editMembers(body, edits)
	if err != nil {
		return nil, fmt.Errorf("narrowing container answer: %w", err)
	}
	return out, nil
}

// endpointRefs reads a container answer's endpoints in one pass: the
// networks the policy does not name, and the other endpoints that hold
// legacy links (which name the linked containers).
func (p *Policy) endpointRefs(ns []byte) (hidden, linked []string, err error) {
	nets, err := endpoints(ns)
	if err != nil || nets == nil {
		return nil, nil, err
	}
	var bad error
	err = objectMembers(nets, func(k jsonKey, v []byte) {
		if k.encoded || p.networks[string(k.raw)] == nil {
			if name := k.String(); p.networks[name] == nil {
				if !slices.Contains(hidden, name) {
					hidden = append(hidden, name)
				}
				return
			}
		}
		if len(v) == 0 || v[0] != '{' {
			return
		}
		links, err := objectField(v, "Links")
		if err != nil {
			bad = cmp.Or(bad, err)
			return
		}
		if len(links) > 0 && !jsonNull(links) && !bytes.Equal(bytes.TrimSpace(links), emptyArray) {
			linked = append(linked, k.String())
		}
	})
	return hidden, linked, cmp.Or(err, bad)
}

// endpoints returns the Networks object of a container answer's
// NetworkSettings, or nil when there is none.
func endpoints(ns []byte) ([]byte, error) {
	if len(ns) == 0 || ns[0] != '{' {
		return nil, nil
	}
	nets, err := objectField(ns, "Networks")
	if err != nil || len(nets) == 0 || nets[0] != '{' {
		return nil, err
	}
	return nets, nil
}

// hostConfigRefs are the HostConfig members that can name other objects.
var hostConfigRefs = []string{"NetworkMode", "PidMode", "IpcMode", "Cgroup", "Links", "VolumesFrom"}

// joinedNamespaceRefs are the top-level members of a container answer that
// come from the container whose network namespace it joins.
var joinedNamespaceRefs = []string{"ResolvConfPath", "HostnamePath", "HostsPath"}

// redactString replaces a string value that is not empty; other values
// stay as they are.
func redactString(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != '"' {
		return v, nil
	}
	if s, err := stringBytes(v); err != nil || len(s) == 0 {
		return v, err
	}
	return redactedJSON, nil
}

// The replacements of hidden values, read-only.
var (
	redactedJSON = marshalPlain(RedactedValue)
	nullJSON     = []byte("null")
	emptyArray   = []byte("[]")
	joinPrefix   = []byte("container:")
)

// hostConfigRef reports whether a HostConfig member names what the client
// may not see, and what replaces it: a NetworkMode naming a network the
// policy does not name or another container, a PidMode or IpcMode joining
// another container ("container:<id>"), legacy Links or VolumesFrom.
func (p *Policy) hostConfigRef(key string, v []byte) (replacement []byte, hidden bool, err error) {
	if key == "Links" || key == "VolumesFrom" {
		return nullJSON, !jsonNull(v) && !bytes.Equal(bytes.TrimSpace(v), emptyArray), nil
	}
	mode, err := stringBytes(v)
	if err != nil {
		return nil, false, err
	}
	hidden = bytes.HasPrefix(mode, joinPrefix) || key == "NetworkMode" && p.networkModeHidden(mode)
	return redactedJSON, hidden, nil
}

// hostConfigHidden reports whether a container answer's HostConfig has a
// member that hostConfigRef hides, and whether it joins another
// container's network namespace ("container:<id>").
func (p *Policy) hostConfigHidden(hc []byte) (hidden, joined bool, err error) {
	if len(hc) == 0 || hc[0] != '{' {
		return false, false, nil
	}
	var bad error
	err = objectMembers(hc, func(k jsonKey, v []byte) {
		for _, key := range hostConfigRefs {
			if k.is(key) {
				_, h, err := p.hostConfigRef(key, v)
				hidden, bad = hidden || h, cmp.Or(bad, err)
				if key == "NetworkMode" && len(v) > 0 && v[0] == '"' {
					mode, _ := stringBytes(v)
					joined = joined || bytes.HasPrefix(mode, joinPrefix)
				}
			}
		}
	})
	return hidden, joined, cmp.Or(err, bad)
}

// networkModeHidden reports whether a network mode names a network the
// policy does not name, or another container ("container:<id>"). The modes
// that name no object (default, host, none) are not hidden.
func (p *Policy) networkModeHidden(mode []byte) bool {
	switch string(mode) {
	case "", "default", "host", "none":
		return false
	}
	return p.networks[string(mode)] == nil
}

// hostConfigEdits replace in a HostConfig what hostConfigRef hides.
func (p *Policy) hostConfigEdits() memberEdits {
	edits := memberEdits{}
	for _, key := range hostConfigRefs {
		edits[key] = func(v []byte) ([]byte, error) {
			replacement, hidden, err := p.hostConfigRef(key, v)
			if !hidden {
				return v, err
			}
			return replacement, err
		}
	}
	return edits
}

// redactEnvValues replaces the values of an Env list.
func redactEnvValues(v []byte) ([]byte, error) {
	var env []string
	if err := json.Unmarshal(v, &env); err != nil || env == nil {
		return v, err
	}
	for i, e := range env {
		name, _, _ := strings.Cut(e, "=")
		env[i] = name + "=" + RedactedValue
	}
	return marshalPlain(env), nil
}

// dropLinkNames removes legacy link names from a list entry's Names.
func dropLinkNames(v []byte) ([]byte, error) {
	var names []string
	if err := json.Unmarshal(v, &names); err != nil {
		return nil, err
	}
	return marshalPlain(slices.DeleteFunc(names, func(n string) bool { return isLinkName([]byte(n)) })), nil
}

// linkNames reports whether a list entry's Names include a legacy link name.
func linkNames(names []byte) bool {
	found := false
	_ = arrayElements(names, func(raw []byte) error {
		n, _ := stringBytes(raw)
		found = found || isLinkName(n)
		return nil
	})
	return found
}

// isLinkName reports whether a container name is a legacy link name
// ("/<container>/<alias>"), which names the linking container.
func isLinkName(n []byte) bool {
	return len(n) > 1 && bytes.IndexByte(n[1:], '/') >= 0
}

// stringBytes is a raw JSON string's value, without a copy when its bytes
// are its value.
func stringBytes(raw []byte) ([]byte, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !encoded(raw[1:len(raw)-1]) {
		return raw[1 : len(raw)-1], nil
	}
	s, _, err := stringValue(raw)
	return []byte(s), err
}

// legacyEndpoint are the NetworkSettings fields that repeat the container's
// endpoint on the default bridge network.
var legacyEndpoint = map[string]string{
	"EndpointID": `""`, "Gateway": `""`, "GlobalIPv6Address": `""`, "GlobalIPv6PrefixLen": `0`,
	"IPAddress": `""`, "IPPrefixLen": `0`, "IPv6Gateway": `""`, "MacAddress": `""`,
}

// memberEdits maps the keys of a JSON object to how their values change:
// the function returns the new value, or nil to drop the member.
type memberEdits map[string]func(v []byte) ([]byte, error)

// editMembers copies the JSON object b member by member, in its order and
// with its bytes, changing the members that edits name. A null stays null.
// b is an object a client decodes into a struct, whose field names
// encoding/json matches whatever their case: a member whose key differs
// from an edited one only in case would be read as that one unedited, so
// the object is refused.
func editMembers(b []byte, edits memberEdits) ([]byte, error) {
	return editObject(b, edits, true)
}

// editEach edits an object value with edits, as editMembers does.
func editEach(edits memberEdits) func([]byte) ([]byte, error) {
	return func(v []byte) ([]byte, error) { return editObject(v, edits, true) }
}

// editEachKey edits an object value that a client decodes into a map, whose
// keys are matched exactly.
func editEachKey(edits memberEdits) func([]byte) ([]byte, error) {
	return func(v []byte) ([]byte, error) { return editObject(v, edits, false) }
}

// foldedKey reports whether k is name in another case, as encoding/json
// folds field names.
func foldedKey(k jsonKey, name string) bool {
	if k.encoded {
		return strings.EqualFold(k.String(), name)
	}
	return strings.EqualFold(string(k.raw), name)
}

func editObject(b []byte, edits memberEdits, folded bool) ([]byte, error) {
	if jsonNull(b) {
		return b, nil
	}
	out := make([]byte, 0, len(b))
	out = append(out, '{')
	first := true
	var bad error
	err := objectMembers(b, func(k jsonKey, v []byte) {
		edit := edits[string(k.raw)]
		if k.encoded {
			edit = edits[k.String()]
		}
		if edit == nil && folded && bad == nil {
			for name := range edits {
				if foldedKey(k, name) {
					bad = fmt.Errorf("answer member %q would be read as %q", clip(k.String()), name)
				}
			}
		}
		if edit != nil && bad == nil {
			var err error
			if v, err = edit(v); err != nil {
				bad = err
			}
			if v == nil {
				return
			}
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, '"')
		out = append(out, k.raw...)
		out = append(out, '"', ':')
		out = append(out, v...)
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	out = append(out, '}')
	if bytes.HasSuffix(b, []byte("\n")) {
		out = append(out, '\n')
	}
	return out, nil
}

// replaceWith replaces a value with raw JSON.
func replaceWith(raw string) func([]byte) ([]byte, error) {
	return func([]byte) ([]byte, error) { return []byte(raw), nil }
}

// dropMember removes a member.
func dropMember([]byte) ([]byte, error) { return nil, nil }

// marshalPlain encodes without escaping <, > and &, as the daemon does.
func marshalPlain(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(b.Bytes(), "\n")
}

// RedactedValue stands in for redacted environment values.
const RedactedValue = "<redacted by sockpin>"

func (p *Policy) decideCreate(call *Call, body Body) (*Decision, error) {
	op := call.Op
	if len(p.creates) == 0 {
		return refuse(op, RuleDefaultDeny, "the policy allows no container create"), nil
	}
	if len(body.Data) == 0 {
		return malformed(op, "container create needs a JSON body"), nil
	}
	var req container.CreateRequest
	if err := decodeStrict(body.Data, &req); err != nil {
		return malformed(op, "%v", err), nil
	}
	name := call.Query["name"]
	var best *createRule
	var bestReason string
	for _, rule := range p.creates {
		reason := rule.check(name, &req)
		if reason == "" {
			d := allow(op, rule.name)
			d.Path = prefix(call) + "/containers/create"
			d.Query = encodeQuery(call.Query)
			d.Body, _ = json.Marshal(&req)
			if req.Config != nil {
				d.Project = req.Config.Labels[p.projectLabel]
			}
			return d, nil
		}
		// Report the first rule whose name pattern fits, else the first.
		if best == nil || !best.namePattern.MatchString(name) && rule.namePattern.MatchString(name) {
			best, bestReason = rule, reason
		}
	}
	return refuse(op, best.name, "%s", bestReason), nil
}
