package filter

import (
	"reflect"
	"time"

	"github.com/docker/go-units"
	"go.yaml.in/yaml/v3"
)

// File is policy.yaml as written, before it is checked and compiled. Every
// key is optional; whatever a key does not allow stays refused.
type File struct {
	// Schema is the version of this file format. Only 1 exists.
	Schema int `yaml:"schema"`
	// APIVersions bounds the /vN.NN path prefix clients may use. Unversioned
	// paths are always accepted. Default 1.41 to 1.51.
	APIVersions *VersionWindow `yaml:"api_versions"`
	// System lists the calls without a target that are allowed: ping and
	// version. Default none.
	System []string `yaml:"system"`
	// Groups names the containers a client may see and act on, recognised by
	// the labels the daemon reports for them. Default none: no container is
	// visible and no existing container can be touched.
	Groups map[string]*GroupRule `yaml:"groups"`
	// Create lists the shapes of container a client may create. Default
	// none.
	Create []*CreateRule `yaml:"create"`
	// Networks names the networks a client may see and connect containers
	// to. Default none.
	Networks map[string]*NetworkRule `yaml:"networks"`
	// Images names the image references a client may pull, inspect and
	// list. Default none.
	Images *ImageRule `yaml:"images"`
	// Audit configures what decisions record about their target.
	Audit *AuditRule `yaml:"audit"`
}

// VersionWindow is an inclusive range of Engine API versions.
type VersionWindow struct {
	Pos Pos
	Min string `yaml:"min"`
	Max string `yaml:"max"`
}

// GroupRule says which containers belong to a group and what a client may do
// to them.
type GroupRule struct {
	Pos Pos
	// About is a sentence for the reviewer; it has no effect.
	About string `yaml:"about"`
	// Labels a container must carry, each with a value that matches. A
	// group needs at least one label.
	Labels map[string]*Match `yaml:"labels"`
	// Allow lists the operations on these containers: inspect (which also
	// makes them visible in lists), start, stop, restart, kill, remove, wait,
	// logs (their output, which may hold secrets), exec (create, start and
	// inspect of execs in them).
	Allow []string `yaml:"allow"`
	// KillSignals are the signals kill (and stop or restart with a signal)
	// may send. Required when kill is allowed.
	KillSignals []string `yaml:"kill_signals"`
	// Remove says which options of remove are allowed. Default: neither.
	Remove *RemoveRule `yaml:"remove"`
	// RedactEnv replaces the values of Config.Env in inspect answers.
	RedactEnv bool `yaml:"redact_env"`
	// Exec lists the commands exec may run in these containers. Required
	// when exec is allowed.
	Exec []*ExecRule `yaml:"exec"`
	// ExecStartPinned also holds exec start and inspect to the exec rules:
	// an exec instance created on the daemon directly (not through the
	// proxy) may then be started only when its command and user fit a rule.
	// Default false: any exec instance in these containers may be started,
	// unless it is privileged or has a terminal or stdin no rule allows.
	ExecStartPinned bool `yaml:"exec_start_pinned"`
}

// RemoveRule lists which options of container remove are allowed.
type RemoveRule struct {
	Pos Pos
	// Force allows removing a running container.
	Force bool `yaml:"force"`
	// Volumes allows removing the container's anonymous volumes too.
	Volumes bool `yaml:"volumes"`
}

// ExecRule is one command exec may run.
type ExecRule struct {
	Pos Pos
	// Rule names the command in logs and refusals.
	Rule string `yaml:"rule"`
	// User the command must run as, exactly as the client writes it.
	User string `yaml:"user"`
	// Argv is the command line, element by element: a plain value must be
	// equal, a {pattern: ...} must match the whole element.
	Argv []*Match `yaml:"argv"`
	// Tty allows a terminal. Default false.
	Tty bool `yaml:"tty"`
	// Stdin allows attaching standard input. Default false.
	Stdin bool `yaml:"stdin"`
}

// CreateRule is one shape of container a client may create. Every field of
// the request that the rule does not name must be empty.
type CreateRule struct {
	Pos Pos
	// Rule names the shape in logs and refusals.
	Rule string `yaml:"rule"`
	// Group the new container belongs to; its labels must satisfy the
	// group, so the client can act on what it created.
	Group string `yaml:"group"`
	// Name is a regular expression the whole container name must match.
	// Named groups, (?P<project>...), can be used as ${project} in labels,
	// cmd and entrypoint.
	Name string `yaml:"name"`
	// Image lists the image references allowed, compared after
	// normalisation (launchdb/postgrest:v1 is docker.io/launchdb/postgrest:v1).
	Image []string `yaml:"image"`
	// Labels the container must carry, and no others.
	Labels map[string]*Match `yaml:"labels"`
	// Cmd is the exact command; empty means the image's default.
	Cmd []string `yaml:"cmd"`
	// Entrypoint is the exact entrypoint; empty means the image's default.
	Entrypoint []string `yaml:"entrypoint"`
	// Env lists the environment variable names that may be set, with any
	// value.
	Env []string `yaml:"env"`
	// Network lists the networks the container may join as its network
	// mode. One is required.
	Network []string `yaml:"network"`
	// Binds is the exact list of bind mounts (order does not matter).
	Binds []string `yaml:"binds"`
	// RestartPolicy lists the restart policy names allowed.
	RestartPolicy []string `yaml:"restart_policy"`
	// Healthcheck is the one healthcheck allowed besides none.
	Healthcheck *HealthcheckRule `yaml:"healthcheck"`
	// SecurityOpt lists options the request may set (any subset).
	SecurityOpt []string `yaml:"security_opt"`
	// CapDrop lists capabilities the request may drop (any subset).
	CapDrop []string `yaml:"cap_drop"`
	// ReadOnlyRootfs allows a read-only root filesystem.
	ReadOnlyRootfs bool `yaml:"read_only_rootfs"`
	// PidsLimit is the largest process limit the request may set; unset
	// (no limit) stays allowed.
	PidsLimit int64 `yaml:"pids_limit"`
	// Memory is the largest memory limit the request may set, such as
	// 512MiB.
	Memory ByteSize `yaml:"memory"`
	// CPUs is the largest CPU quota (in CPUs) the request may set.
	CPUs float64 `yaml:"cpus"`
}

// HealthcheckRule is a container healthcheck, field for field.
type HealthcheckRule struct {
	Pos           Pos
	Test          []string      `yaml:"test"`
	Interval      time.Duration `yaml:"interval"`
	Timeout       time.Duration `yaml:"timeout"`
	StartPeriod   time.Duration `yaml:"start_period"`
	StartInterval time.Duration `yaml:"start_interval"`
	Retries       int           `yaml:"retries"`
}

// NetworkRule says what a client may do with one network.
type NetworkRule struct {
	Pos Pos
	// About is a sentence for the reviewer; it has no effect.
	About string `yaml:"about"`
	// Connect lists the groups whose containers may be connected to and
	// disconnected from this network.
	Connect []string `yaml:"connect"`
}

// ImageRule names the images a client may touch.
type ImageRule struct {
	Pos Pos
	// Pull lists the references that may be pulled. A reference must name a
	// tag or a digest.
	Pull []string `yaml:"pull"`
	// Inspect lists the references that may be inspected.
	Inspect []string `yaml:"inspect"`
	// List allows listing images; the answer shows only references named in
	// Inspect.
	List bool `yaml:"list"`
}

// AuditRule configures the audit record.
type AuditRule struct {
	Pos Pos
	// ProjectLabel is the label whose value the audit log records for each
	// target. Default none.
	ProjectLabel string `yaml:"project_label"`
}

// Match is a value that must be equal to a literal or, written as
// {pattern: REGEXP}, match a regular expression as a whole.
type Match struct {
	Pos     Pos
	Exact   string
	Pattern string
	// IsPattern tells a pattern from a literal.
	IsPattern bool
}

func (m *Match) decodeNode(d *decoder, n *yaml.Node) {
	m.Pos = posOf(n)
	if n.Kind == yaml.MappingNode {
		var p struct {
			Pattern string `yaml:"pattern"`
		}
		before := len(d.problems)
		d.decodeStruct(n, reflectValue(&p))
		if len(d.problems) == before && p.Pattern == "" {
			d.fail(n, "pattern is empty")
		}
		m.Pattern, m.IsPattern = p.Pattern, true
		return
	}
	if s, ok := d.scalar(n, "a value or {pattern: ...}"); ok {
		m.Exact = s
	}
}

// ByteSize is a size in bytes, written as a number or with a unit (512MiB,
// 1g).
type ByteSize int64

func (b *ByteSize) decodeNode(d *decoder, n *yaml.Node) {
	s, ok := d.scalar(n, "a size such as 512MiB")
	if !ok {
		return
	}
	size, err := units.RAMInBytes(s)
	if err != nil || size < 0 {
		d.fail(n, "%q is not a size such as 512MiB", s)
		return
	}
	*b = ByteSize(size)
}

func reflectValue(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }
