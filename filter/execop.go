package filter

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/docker/docker/api/types/container"
)

func (p *Policy) decideExecCreate(ctx context.Context, call *Call, body Body, r Resolver) (*Decision, error) {
	op, ref := call.Op, call.Params[0]
	if !refPattern.MatchString(ref) {
		return malformed(op, "container reference %q is malformed", clip(ref)), nil
	}
	candidates := p.groupsAllowing(op, nil)
	if len(candidates) == 0 {
		return refuse(op, RuleDefaultDeny, "no group allows exec"), nil
	}
	if len(body.Data) == 0 {
		return malformed(op, "exec create needs a JSON body"), nil
	}
	var opts container.ExecOptions
	if err := decodeStrict(body.Data, &opts); err != nil {
		return malformed(op, "%v", err), nil
	}
	// Refuse before any lookup when no exec rule of any group fits.
	fits := false
	for _, g := range candidates {
		for _, e := range g.exec {
			fits = fits || e.check(opts) == ""
		}
	}
	if !fits {
		e := candidates[0].exec[0]
		return refuse(op, candidates[0].name+"/"+e.name, "%s", e.check(opts)), nil
	}
	c, err := p.lookupContainer(ctx, r, "", ref, false)
	if err != nil {
		return resolved(op, err, noSuchContainer(ref))
	}
	for _, g := range candidates {
		if !g.contains(c.Labels) {
			continue
		}
		for _, e := range g.exec {
			if e.check(opts) != "" {
				continue
			}
			d := allow(op, g.name+"/"+e.name)
			d.ContainerID, d.Project = c.ID, c.Labels[p.projectLabel]
			d.Path = prefix(call) + "/containers/" + c.ID + "/exec"
			d.Body, _ = json.Marshal(&opts)
			return d, nil
		}
		return refuse(op, g.name, "the command is not one group %s may run", g.name), nil
	}
	if !p.visible(c.Labels) {
		return hidden(op, noSuchContainer(ref), "container %q is in no group that allows exec",
			clip(ref)), nil
	}
	return refuse(op, RuleDefaultDeny, "container %q is in no group that allows exec", clip(ref)), nil
}

// decideExec decides exec start and inspect: allowed only for an exec whose
// container is in a group that allows exec, found by asking the daemon
// about the exec, never by remembering which execs were created here.
func (p *Policy) decideExec(ctx context.Context, call *Call, body Body, r Resolver) (*Decision, error) {
	op, id := call.Op, call.Params[0]
	if !execPattern.MatchString(id) {
		return malformed(op, "exec ID %q is malformed", clip(id)), nil
	}
	candidates := p.groupsAllowing(op, nil)
	if len(candidates) == 0 {
		return refuse(op, RuleDefaultDeny, "no group allows exec"), nil
	}
	var start container.ExecStartOptions
	if len(body.Data) > 0 {
		if err := decodeStrict(body.Data, &start); err != nil {
			return malformed(op, "%v", err), nil
		}
	}
	noSuchExec := fmt.Sprintf("sockpin: no exec instance %s that this client may see", id)
	ex, err := r.Exec(ctx, answerVersion(call, op == OpExecInspect), id)
	if err != nil {
		return resolved(op, err, noSuchExec)
	}
	c, err := r.Container(ctx, "", ex.ContainerID, false)
	if err != nil {
		return resolved(op, err, noSuchExec)
	}
	g := holding(candidates, c.Labels)
	if g == nil {
		return hidden(op, noSuchExec, "exec %s runs in a container of no group that allows exec",
			id[:12]), nil
	}
	if reason := g.checkExecProcess(ex.Inspect); reason != "" {
		return refuse(op, g.name, "%s", reason), nil
	}
	d := allow(op, g.name)
	d.ContainerID, d.Project = c.ID, c.Labels[p.projectLabel]
	if op == OpExecInspect {
		d.Answer = ex.Inspect
		return d, nil
	}
	if reason := checkExecStart(g, start); reason != "" {
		return refuse(op, g.name, "%s", reason), nil
	}
	d.Path = prefix(call) + "/exec/" + id + "/start"
	if len(body.Data) > 0 {
		d.Body, _ = json.Marshal(&start)
	}
	return d, nil
}
