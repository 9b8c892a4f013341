package filter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/network"
)

// networkRule is a compiled NetworkRule.
type networkRule struct {
	name    string
	connect []*group
}

var networkName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (c *compiler) networks(rules map[string]*NetworkRule, groups []*group) map[string]*networkRule {
	out := make(map[string]*networkRule, len(rules))
	for _, name := range sortedKeys(rules) {
		r := rules[name]
		if r == nil {
			r = &NetworkRule{}
		}
		if !networkName.MatchString(name) {
			c.fail(r.Pos, "networks: %q is not a network name", name)
		}
		nr := &networkRule{name: name}
		for i, gname := range r.Connect {
			g := findGroup(groups, gname)
			if g == nil {
				c.fail(c.at(&r.Connect[i]), "networks.%s.connect: group %q is not defined", name, gname)
				continue
			}
			nr.connect = append(nr.connect, g)
		}
		out[name] = nr
	}
	return out
}

// noSuchNetwork answers for a network that does not exist or that the
// client may not see, alike.
func noSuchNetwork(ref string) string {
	return fmt.Sprintf("sockpin: no network %q that this client may see", clip(ref))
}

func findGroup(groups []*group, name string) *group {
	for _, g := range groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

func (p *Policy) decideNetworkRead(ctx context.Context, call *Call, r Resolver) (*Decision, error) {
	op := call.Op
	if len(p.networks) == 0 {
		return refuse(op, RuleDefaultDeny, "the policy names no network"), nil
	}
	if op == OpNetworkList {
		d := allow(op, "networks")
		d.Path = prefix(call) + "/networks"
		d.Query = encodeQuery(call.Query)
		d.narrow = func(body []byte) ([]byte, error) {
			return narrowArray(body, keepIf(func(elem []byte) (bool, error) {
				name, err := StringField(elem, "Name")
				return err == nil && p.networks[name] != nil, err
			}))
		}
		return d, nil
	}
	ref := call.Params[0]
	if !refPattern.MatchString(ref) {
		return malformed(op, "network reference %q is malformed", clip(ref)), nil
	}
	if len(call.Query) > 0 {
		return refuse(op, RuleDefaultDeny, "network inspect options are not allowed"), nil
	}
	n, err := p.lookupNetwork(ctx, r, call.Version, ref)
	if err != nil {
		return resolved(op, err, noSuchNetwork(ref))
	}
	if p.networks[n.Name] == nil {
		return hidden(op, noSuchNetwork(ref), "network %q is not named by the policy", clip(ref)), nil
	}
	d := allow(op, n.Name)
	d.Answer, err = p.narrowNetwork(ctx, n.Inspect, r)
	return d, err
}

// lookupNetwork resolves a network reference as the daemon does, in the
// world the client sees. A reference that could be an ID prefix (1 to 63
// hex digits) is resolved against the networks the policy names alone,
// each looked up by its name: by exact name first, then by a prefix that
// only one of them has. Hidden networks then neither make a prefix
// ambiguous nor shadow it, and such a lookup costs the same whatever
// hidden networks exist. Other references go to the daemon.
func (p *Policy) lookupNetwork(ctx context.Context, r Resolver, version, ref string) (*Network, error) {
	if !hexPrefix(ref) || p.networks[ref] != nil {
		return r.Network(ctx, version, ref)
	}
	var only *Network
	prefixed := 0
	for name := range p.networks {
		n, err := r.Network(ctx, version, name)
		var le *LookupError
		switch {
		case errors.As(err, &le) && le.Status == http.StatusNotFound:
			continue // the policy names a network that does not exist
		case err != nil:
			return nil, err
		case n.Name == name && strings.HasPrefix(n.ID, ref):
			only, prefixed = n, prefixed+1
		}
	}
	if prefixed != 1 {
		return nil, notFound("network %s not found", ref)
	}
	return only, nil
}

// narrowNetwork removes from a network inspect answer the containers the
// client may not see: their names and addresses are not its business.
func (p *Policy) narrowNetwork(ctx context.Context, inspect []byte, r Resolver) ([]byte, error) {
	raw, err := objectField(inspect, "Containers")
	if err != nil || len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return inspect, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, fmt.Errorf("narrowing network answer: %w", err)
	}
	for id := range members {
		c, err := r.Container(ctx, "", id, false)
		var le *LookupError
		switch {
		case errors.As(err, &le):
			delete(members, id)
		case err != nil:
			return nil, &ResolveError{Op: OpNetworkInspect, Err: err}
		case !p.visible(c.Labels):
			delete(members, id)
		}
	}
	out, err := editMembers(inspect, memberEdits{"Containers": replaceWith(string(marshalPlain(members)))})
	if err != nil {
		return nil, fmt.Errorf("narrowing network answer: %w", err)
	}
	return out, nil
}

func (p *Policy) decideNetworkConnect(ctx context.Context, call *Call, body Body, r Resolver) (*Decision, error) {
	op, ref := call.Op, call.Params[0]
	if !refPattern.MatchString(ref) {
		return malformed(op, "network reference %q is malformed", clip(ref)), nil
	}
	connectable := false
	for _, nr := range p.networks {
		connectable = connectable || len(nr.connect) > 0
	}
	if !connectable {
		return refuse(op, RuleDefaultDeny, "no network allows connecting containers"), nil
	}
	if len(body.Data) == 0 {
		return malformed(op, "%s needs a JSON body", op), nil
	}
	target, reason, err := decodeConnect(op, body.Data)
	if err != nil {
		return malformed(op, "%v", err), nil
	}
	if reason != "" {
		return refuse(op, RuleDefaultDeny, "%s", reason), nil
	}
	if !refPattern.MatchString(target) {
		return malformed(op, "container reference %q is malformed", clip(target)), nil
	}
	n, err := p.lookupNetwork(ctx, r, "", ref)
	if err != nil {
		return resolved(op, err, noSuchNetwork(ref))
	}
	nr := p.networks[n.Name]
	switch {
	case nr == nil:
		return hidden(op, noSuchNetwork(ref), "network %q is not named by the policy", clip(ref)), nil
	case len(nr.connect) == 0:
		return refuse(op, RuleDefaultDeny, "network %q allows no connections", clip(ref)), nil
	}
	c, err := p.lookupContainer(ctx, r, "", target, false)
	if err != nil {
		return resolved(op, err, noSuchContainer(target))
	}
	idx := slices.IndexFunc(nr.connect, func(g *group) bool { return g.contains(c.Labels) })
	if idx < 0 && !p.visible(c.Labels) {
		return hidden(op, noSuchContainer(target), "container %q may not be connected to network %s",
			clip(target), nr.name), nil
	}
	if idx < 0 {
		return refuse(op, nr.name, "container %q may not be connected to network %s",
			clip(target), nr.name), nil
	}
	d := allow(op, nr.name)
	d.ContainerID, d.Project = c.ID, c.Labels[p.projectLabel]
	d.Path = prefix(call) + "/networks/" + n.ID + "/" + map[Op]string{
		OpNetworkConnect: "connect", OpNetworkDisconnect: "disconnect"}[op]
	// The container goes upstream by the ID it resolved to.
	if op == OpNetworkConnect {
		d.Body, _ = json.Marshal(network.ConnectOptions{Container: c.ID})
	} else {
		d.Body, _ = json.Marshal(network.DisconnectOptions{Container: c.ID})
	}
	return d, nil
}

// decodeConnect reads a connect or disconnect body. It returns the
// container reference, or a reason when an option is set that no rule
// allows (endpoint settings could claim another service's name or address;
// force disconnects regardless of state).
func decodeConnect(op Op, data []byte) (string, string, error) {
	if op == OpNetworkConnect {
		var c network.ConnectOptions
		if err := decodeStrict(data, &c); err != nil {
			return "", "", err
		}
		if c.EndpointConfig != nil {
			if f := firstSet(reflect.ValueOf(*c.EndpointConfig), "EndpointConfig"); f != "" {
				return c.Container, "field " + f + " is not allowed", nil
			}
		}
		return c.Container, "", nil
	}
	var d network.DisconnectOptions
	if err := decodeStrict(data, &d); err != nil {
		return "", "", err
	}
	if d.Force {
		return d.Container, "forced disconnect is not allowed", nil
	}
	return d.Container, "", nil
}
