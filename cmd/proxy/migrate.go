package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// legacyVar is one setting of Tecnativa's or LinuxServer's
// docker-socket-proxy: a section of the Engine API it opened.
type legacyVar struct {
	name    string
	on      bool // default
	exposes string
}

// legacyVars are the docker-socket-proxy settings and what each exposed.
var legacyVars = []legacyVar{
	{"EVENTS", true, "GET /events: every container's lifecycle, names and labels, live"},
	{"PING", true, "GET /_ping"},
	{"VERSION", true, "GET /version"},
	{"AUTH", false, "/auth: registry logins, a way to probe other hosts"},
	{"BUILD", false, "/build: building images from any context, including remote ones"},
	{"COMMIT", false, "/commit: turning any container into an image"},
	{"CONFIGS", false, "/configs: swarm configs"},
	{"CONTAINERS", false, "/containers: list, inspect (with every container's environment: passwords and keys), logs, archive (read any file), stats, top"},
	{"DISTRIBUTION", false, "/distribution: registry lookups"},
	{"EXEC", false, "/exec: starting and inspecting any exec instance"},
	{"GRPC", false, "/grpc: BuildKit's gRPC session"},
	{"IMAGES", false, "/images: list, inspect, history, export any image"},
	{"INFO", false, "GET /info: host details"},
	{"NETWORKS", false, "/networks: list and inspect every network"},
	{"NODES", false, "/nodes: swarm nodes"},
	{"PLUGINS", false, "/plugins: plugins, which run with host privileges"},
	{"SECRETS", false, "/secrets: swarm secrets"},
	{"SERVICES", false, "/services: swarm services"},
	{"SESSION", false, "/session: BuildKit sessions"},
	{"SWARM", false, "/swarm: joining or leaving a swarm"},
	{"SYSTEM", false, "/system: disk usage of everything"},
	{"TASKS", false, "/tasks: swarm tasks"},
	{"VOLUMES", false, "/volumes: list, create (including host bind volumes), remove any volume"},
	{"POST", false, "every method besides GET and HEAD on every section above: with CONTAINERS, creating privileged containers with / mounted; with EXEC and CONTAINERS, running any command as root in any container; with IMAGES, pulling and deleting any image"},
	{"ALLOW_START", false, "POST /containers/{id}/start on any container, even with POST=0"},
	{"ALLOW_STOP", false, "POST /containers/{id}/stop on any container, even with POST=0"},
	{"ALLOW_RESTARTS", false, "POST /containers/{id}/restart and kill on any container, even with POST=0"},
}

// policyMigrate prints a starting policy for a docker-socket-proxy
// configuration, saying in comments what the old configuration exposed.
func policyMigrate(args []string, getenv func(string) string, out io.Writer) error {
	set := map[string]bool{}
	for _, v := range legacyVars {
		set[v.name] = v.on
		if s := getenv(v.name); s != "" {
			set[v.name] = s != "0"
		}
	}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !knownLegacy(k) {
			return fmt.Errorf("%w: migrate takes VAR=VALUE with a docker-socket-proxy variable, not %q",
				errUsage, a)
		}
		set[k] = v != "0" && v != ""
	}
	writeMigrated(out, set)
	return nil
}

func knownLegacy(name string) bool {
	for _, v := range legacyVars {
		if v.name == name {
			return true
		}
	}
	return false
}

func writeMigrated(w io.Writer, set map[string]bool) {
	var enabled, gone []string
	for _, v := range legacyVars {
		if !set[v.name] {
			continue
		}
		enabled = append(enabled, fmt.Sprintf("#   %s=1  %s", v.name, v.exposes))
		switch v.name {
		case "PING", "VERSION", "CONTAINERS", "EXEC", "IMAGES", "NETWORKS", "POST",
			"ALLOW_START", "ALLOW_STOP", "ALLOW_RESTARTS":
		default:
			gone = append(gone, v.name)
		}
	}
	sort.Strings(gone)
	write := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	write("# Starting policy migrated from docker-socket-proxy settings.")
	write("#")
	write("# What the old settings exposed (any client that reached the proxy could do all of this):")
	for _, e := range enabled {
		write("%s", e)
	}
	if len(gone) > 0 {
		write("#")
		write("# sockpin never forwards these sections, whatever the policy says: %s.", strings.Join(gone, ", "))
	}
	write("#")
	write("# sockpin cannot open a section wholesale. Each rule below is as wide as sockpin allows and")
	write("# names what you must fill in (CHANGE-ME): the label your managed containers carry, the image")
	write("# and name of the containers you create, the exact commands you exec. Check the result with")
	write("# `proxy policy check` and read it back with `proxy policy explain`.")
	write("")
	write("schema: 1")
	write("")
	var sys []string
	if set["PING"] {
		sys = append(sys, "ping")
	}
	if set["VERSION"] {
		sys = append(sys, "version")
	}
	write("system: [%s]", strings.Join(sys, ", "))
	writeMigratedContainers(write, set)
	if set["NETWORKS"] {
		write("")
		write("# NETWORKS=1 showed every network. sockpin shows only the networks named here.")
		write("networks:")
		write("  CHANGE-ME-network: {}")
	}
	if set["IMAGES"] {
		write("")
		write("# IMAGES=1 showed every image%s. sockpin pulls and inspects only pinned references.",
			map[bool]string{true: " and let clients pull, tag and delete any", false: ""}[set["POST"]])
		write("images:")
		write("  inspect: [CHANGE-ME/image:tag]")
		if set["POST"] {
			write("  pull: [CHANGE-ME/image:tag]")
		}
		write("  list: true")
	}
}

func writeMigratedContainers(write func(string, ...any), set map[string]bool) {
	if !set["CONTAINERS"] {
		return
	}
	allow := []string{"inspect"}
	post := set["POST"]
	if post || set["ALLOW_START"] {
		allow = append(allow, "start")
	}
	if post || set["ALLOW_STOP"] {
		allow = append(allow, "stop")
	}
	if post || set["ALLOW_RESTARTS"] {
		allow = append(allow, "restart", "kill")
	}
	if post {
		allow = append(allow, "remove", "wait")
	}
	exec := post && set["EXEC"]
	if exec {
		allow = append(allow, "exec")
	}
	write("")
	write("# CONTAINERS=1 let clients see and act on EVERY container. sockpin acts only on containers")
	write("# that carry the labels below: put the label your managed containers carry.")
	write("groups:")
	write("  managed:")
	write("    labels:")
	write("      CHANGE-ME.managed: \"true\"")
	write("    allow: [%s]", strings.Join(allow, ", "))
	if set["ALLOW_RESTARTS"] || post {
		write("    kill_signals: [SIGHUP, SIGTERM]   # the old proxy allowed every signal, SIGKILL included")
	}
	if post {
		write("    remove: {force: true, volumes: false}   # the old proxy allowed both")
	}
	write("    redact_env: true   # the old proxy showed every container's environment")
	if exec {
		write("    # EXEC=1 with POST=1 let clients run ANY command, as root, in ANY container.")
		write("    # sockpin runs only the exact commands listed here.")
		write("    exec:")
		write("      - rule: CHANGE-ME")
		write("        user: CHANGE-ME")
		write("        argv: [CHANGE-ME, {pattern: '^CHANGE-ME$'}]")
	}
	if post {
		write("")
		write("# POST=1 with CONTAINERS=1 let clients create ANY container: privileged, with / mounted,")
		write("# on the host network. sockpin creates only containers that fit a rule like this one.")
		write("create:")
		write("  - rule: managed")
		write("    group: managed")
		write("    name: '^CHANGE-ME-[a-z0-9-]+$'")
		write("    image: [CHANGE-ME/image:tag]")
		write("    labels:")
		write("      CHANGE-ME.managed: \"true\"")
		write("    network: [CHANGE-ME-network]")
	}
}
