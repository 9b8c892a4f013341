package filter

import (
	"strings"
)

// Op names an operation of the Docker Engine API, such as container.create.
type Op string

// The operations a policy can allow. Every other operation is refused
// whatever the policy says.
const (
	OpPing              Op = "system.ping"
	OpVersion           Op = "system.version"
	OpContainerList     Op = "container.list"
	OpContainerInspect  Op = "container.inspect"
	OpContainerCreate   Op = "container.create"
	OpContainerStart    Op = "container.start"
	OpContainerStop     Op = "container.stop"
	OpContainerRestart  Op = "container.restart"
	OpContainerKill     Op = "container.kill"
	OpContainerRemove   Op = "container.remove"
	OpContainerWait     Op = "container.wait"
	OpContainerLogs     Op = "container.logs"
	OpExecCreate        Op = "exec.create"
	OpExecStart         Op = "exec.start"
	OpExecInspect       Op = "exec.inspect"
	OpNetworkList       Op = "network.list"
	OpNetworkInspect    Op = "network.inspect"
	OpNetworkConnect    Op = "network.connect"
	OpNetworkDisconnect Op = "network.disconnect"
	OpImageList         Op = "image.list"
	OpImageInspect      Op = "image.inspect"
	OpImagePull         Op = "image.pull"
)

// OpUnknown labels requests that match no endpoint of the Engine API.
const OpUnknown Op = "unknown"

// opInfo says how an operation is handled once it is allowed.
type opInfo struct {
	// query lists the query keys the operation accepts. Keys that start with
	// an upper-case letter are never read by the daemon and are dropped.
	query []string
	// body is true when the operation takes a JSON body.
	body bool
	// stream is true for answers that may run for a long time (followed
	// streams, waits, hijacked connections): no total time limit applies.
	stream bool
	// hijack is true when the daemon may switch protocols (101).
	hijack bool
}

var allowable = map[Op]opInfo{
	OpPing:             {},
	OpVersion:          {},
	OpContainerList:    {query: []string{"all", "limit", "size", "filters"}},
	OpContainerInspect: {query: []string{"size"}},
	OpContainerCreate:  {query: []string{"name"}, body: true},
	OpContainerStart:   {},
	OpContainerStop:    {query: []string{"t", "signal"}, stream: true},
	OpContainerRestart: {query: []string{"t", "signal"}, stream: true},
	OpContainerKill:    {query: []string{"signal"}},
	OpContainerRemove:  {query: []string{"force", "v", "link"}},
	OpContainerWait:    {query: []string{"condition"}, stream: true},
	OpContainerLogs: {query: []string{"follow", "stdout", "stderr", "since", "until", "timestamps",
		"tail", "details"}, stream: true},
	OpExecCreate:        {body: true},
	OpExecStart:         {body: true, stream: true, hijack: true},
	OpExecInspect:       {},
	OpNetworkList:       {query: []string{"filters"}},
	OpNetworkInspect:    {query: []string{"verbose", "scope"}},
	OpNetworkConnect:    {body: true},
	OpNetworkDisconnect: {body: true},
	OpImageList:         {query: []string{"all", "filters", "shared-size", "digests", "manifests"}},
	OpImageInspect:      {query: []string{"manifests"}},
	OpImagePull:         {query: []string{"fromImage", "tag"}, stream: true},
}

// Allowable reports whether a policy can allow op at all.
func (op Op) Allowable() bool {
	_, ok := allowable[op]
	return ok
}

// TakesBody reports whether op carries a JSON request body.
func (op Op) TakesBody() bool { return allowable[op].body }

// Streams reports whether an allowed op may answer with a long-running
// stream, to which no total time limit applies.
func (op Op) Streams() bool { return allowable[op].stream }

// AllowableOps lists the operations a policy can allow, in a stable order.
func AllowableOps() []Op {
	return []Op{
		OpPing, OpVersion,
		OpContainerList, OpContainerInspect, OpContainerCreate, OpContainerStart,
		OpContainerStop, OpContainerRestart, OpContainerKill, OpContainerRemove,
		OpContainerWait, OpContainerLogs,
		OpExecCreate, OpExecStart, OpExecInspect,
		OpNetworkList, OpNetworkInspect, OpNetworkConnect, OpNetworkDisconnect,
		OpImageList, OpImageInspect, OpImagePull,
	}
}

// route maps a method and a path template to an operation. In a template,
// {id} matches one path segment and {name} one or more (image names contain
// slashes).
type route struct {
	method string
	parts  []string
	op     Op
}

// routeTable is the Engine API, endpoint by endpoint. Endpoints a policy can
// never allow are listed too, so that a refusal names what was asked for.
const routeTable = `
GET  /_ping                          system.ping
HEAD /_ping                          system.ping
GET  /version                        system.version
GET  /info                           system.info
GET  /events                         system.events
GET  /system/df                      system.df
POST /auth                           system.auth
POST /session                        system.session
POST /grpc                           system.grpc

GET    /containers/json              container.list
POST   /containers/create            container.create
POST   /containers/prune             container.prune
GET    /containers/{id}/json         container.inspect
GET    /containers/{id}/top          container.top
GET    /containers/{id}/logs         container.logs
GET    /containers/{id}/changes      container.changes
GET    /containers/{id}/export       container.export
GET    /containers/{id}/stats        container.stats
POST   /containers/{id}/resize       container.resize
POST   /containers/{id}/start        container.start
POST   /containers/{id}/stop         container.stop
POST   /containers/{id}/restart      container.restart
POST   /containers/{id}/kill         container.kill
POST   /containers/{id}/update       container.update
POST   /containers/{id}/rename       container.rename
POST   /containers/{id}/pause        container.pause
POST   /containers/{id}/unpause      container.unpause
POST   /containers/{id}/attach       container.attach
GET    /containers/{id}/attach/ws    container.attach
POST   /containers/{id}/wait         container.wait
DELETE /containers/{id}              container.remove
HEAD   /containers/{id}/archive      container.archive
GET    /containers/{id}/archive      container.archive
PUT    /containers/{id}/archive      container.archive
POST   /containers/{id}/exec         exec.create
GET    /containers/{id}/checkpoints  container.checkpoint
POST   /containers/{id}/checkpoints  container.checkpoint
DELETE /containers/{id}/checkpoints/{id} container.checkpoint

POST /exec/{id}/start                exec.start
POST /exec/{id}/resize               exec.resize
GET  /exec/{id}/json                 exec.inspect

GET    /images/json                  image.list
POST   /images/create                image.pull
GET    /images/search                image.search
POST   /images/prune                 image.prune
GET    /images/get                   image.export
POST   /images/load                  image.load
GET    /images/{name}/json           image.inspect
GET    /images/{name}/history        image.history
POST   /images/{name}/push           image.push
POST   /images/{name}/tag            image.tag
GET    /images/{name}/get            image.export
DELETE /images/{name}                image.remove
POST   /build                        image.build
POST   /build/prune                  image.build
POST   /build/cancel                 image.build
POST   /commit                       image.commit
GET    /distribution/{name}/json     image.distribution

GET    /networks                     network.list
POST   /networks/create              network.create
POST   /networks/prune               network.prune
GET    /networks/{id}                network.inspect
DELETE /networks/{id}                network.remove
POST   /networks/{id}/connect        network.connect
POST   /networks/{id}/disconnect     network.disconnect

GET    /volumes                      volume.list
POST   /volumes/create               volume.create
POST   /volumes/prune                volume.prune
GET    /volumes/{id}                 volume.inspect
PUT    /volumes/{id}                 volume.update
DELETE /volumes/{id}                 volume.remove

GET    /swarm                        swarm.inspect
POST   /swarm/init                   swarm.init
POST   /swarm/join                   swarm.join
POST   /swarm/leave                  swarm.leave
POST   /swarm/update                 swarm.update
GET    /swarm/unlockkey              swarm.unlockkey
POST   /swarm/unlock                 swarm.unlock
GET    /nodes                        node.list
GET    /nodes/{id}                   node.inspect
DELETE /nodes/{id}                   node.remove
POST   /nodes/{id}/update            node.update
GET    /services                     service.list
POST   /services/create              service.create
GET    /services/{id}                service.inspect
DELETE /services/{id}                service.remove
POST   /services/{id}/update         service.update
GET    /services/{id}/logs           service.logs
GET    /tasks                        task.list
GET    /tasks/{id}                   task.inspect
GET    /tasks/{id}/logs              task.logs
GET    /secrets                      secret.list
POST   /secrets/create               secret.create
GET    /secrets/{id}                 secret.inspect
DELETE /secrets/{id}                 secret.remove
POST   /secrets/{id}/update          secret.update
GET    /configs                      config.list
POST   /configs/create               config.create
GET    /configs/{id}                 config.inspect
DELETE /configs/{id}                 config.remove
POST   /configs/{id}/update          config.update

GET    /plugins                      plugin.list
GET    /plugins/privileges           plugin.privileges
POST   /plugins/pull                 plugin.pull
POST   /plugins/create               plugin.create
GET    /plugins/{name}/json          plugin.inspect
DELETE /plugins/{name}               plugin.remove
POST   /plugins/{name}/enable        plugin.enable
POST   /plugins/{name}/disable       plugin.disable
POST   /plugins/{name}/upgrade       plugin.upgrade
POST   /plugins/{name}/push          plugin.push
POST   /plugins/{name}/set           plugin.set

GET    /debug/{name}                 debug
POST   /debug/{name}                 debug
`

// routes groups the table by first path segment.
var routes = parseRoutes(routeTable)

func parseRoutes(table string) map[string][]route {
	out := make(map[string][]route)
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			panic("filter: malformed route line: " + line)
		}
		parts := strings.Split(strings.TrimPrefix(f[1], "/"), "/")
		out[parts[0]] = append(out[parts[0]], route{method: f[0], parts: parts, op: Op(f[2])})
	}
	return out
}

// match reports whether segs fit the route's template, and returns the path
// parameters in order ({name} joined back with slashes).
func (r route) match(segs []string) ([]string, bool) {
	name := -1
	for i, p := range r.parts {
		if p == "{name}" {
			name = i
		}
	}
	if name < 0 {
		if len(segs) != len(r.parts) {
			return nil, false
		}
		return matchParts(r.parts, segs)
	}
	// {name} takes every segment between the literal prefix and suffix.
	suffix := len(r.parts) - name - 1
	if len(segs) < len(r.parts) {
		return nil, false
	}
	head, okHead := matchParts(r.parts[:name], segs[:name])
	tail, okTail := matchParts(r.parts[name+1:], segs[len(segs)-suffix:])
	if !okHead || !okTail {
		return nil, false
	}
	params := append(head, strings.Join(segs[name:len(segs)-suffix], "/"))
	return append(params, tail...), true
}

func matchParts(parts, segs []string) ([]string, bool) {
	var params []string
	for i, p := range parts {
		if p == "{id}" {
			params = append(params, segs[i])
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// classify finds the operation for a method and canonical path segments. It
// returns the operation, its path parameters, and whether some route had the
// path but not the method.
func classify(method string, segs []string) (op Op, params []string, wrongMethod bool) {
	if len(segs) == 0 {
		return OpUnknown, nil, false
	}
	for _, r := range routes[segs[0]] {
		p, ok := r.match(segs)
		if !ok {
			continue
		}
		if r.method != method {
			wrongMethod = true
			continue
		}
		return r.op, p, false
	}
	return OpUnknown, nil, wrongMethod
}
