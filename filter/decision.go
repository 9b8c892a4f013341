package filter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// Decision is the outcome for one request: refused with a status and a
// reason, or allowed with exactly what to send to the daemon.
type Decision struct {
	Op      Op
	Allowed bool
	// Status is the HTTP status of a refusal: 400 malformed or not
	// canonical, 403 refused by policy, 404 unknown target, 413 too large.
	Status int
	// Rule names the rule that allowed or refused the request.
	Rule string
	// Reason says why, in words for the client and the audit log.
	Reason string
	// Public, when set, is what the client is told instead of Reason: a
	// target the client may not see is answered as if it did not exist,
	// so that answers do not reveal what exists; the audit log keeps the
	// real reason.
	Public string

	// Path and Query are what to send upstream: canonical, with targets
	// replaced by the full IDs they resolved to.
	Path  string
	Query string
	// Body is the re-encoded body that was checked, or nil.
	Body []byte
	// Answer, when set, is the complete answer: the resolution already
	// fetched what the client asked for (an inspect), so nothing more is
	// sent upstream.
	Answer []byte
	// Hijack allows the daemon to switch protocols for this request.
	Hijack bool
	// Stream marks answers that may last long (no total time limit).
	Stream bool

	// ContainerID and Project describe the target for the audit log.
	ContainerID string
	Project     string

	narrow func([]byte) ([]byte, error)
}

// Message is the text of the Docker-shaped error body of a refusal.
func (d *Decision) Message() string {
	switch {
	case d.Public != "":
		return d.Public
	case d.Rule == RuleLookup:
		return d.Reason
	case d.Status == http.StatusForbidden:
		return fmt.Sprintf("sockpin: %s (rule %s)", d.Reason, d.Rule)
	default:
		return "sockpin: " + d.Reason
	}
}

// Narrows reports whether the daemon's answer must be narrowed before the
// client sees it (a list shows only what the client may see).
func (d *Decision) Narrows() bool { return d.narrow != nil }

// Narrow removes from a successful answer what the client may not see.
func (d *Decision) Narrow(body []byte) ([]byte, error) {
	if d.narrow == nil {
		return body, nil
	}
	return d.narrow(body)
}

// Rule names used when no rule of the policy applies.
const (
	RuleCanonical   = "canonical"
	RuleDefaultDeny = "default-deny"
	RuleSize        = "size-limit"
	// RuleLookup marks an answer the daemon gave while a target was looked
	// up (no such container, API version too new); see resolved.
	RuleLookup = "lookup"
)

func malformed(op Op, format string, args ...any) *Decision {
	return &Decision{Op: op, Status: http.StatusBadRequest, Rule: RuleCanonical,
		Reason: fmt.Sprintf(format, args...)}
}

func refuse(op Op, rule, format string, args ...any) *Decision {
	return &Decision{Op: op, Status: http.StatusForbidden, Rule: rule,
		Reason: fmt.Sprintf(format, args...)}
}

// TooLarge is the decision for a body over the size limit.
func TooLarge(op Op, limit int64) *Decision {
	return &Decision{Op: op, Status: http.StatusRequestEntityTooLarge, Rule: RuleSize,
		Reason: fmt.Sprintf("request body is larger than %d bytes", limit)}
}

func allow(op Op, rule string) *Decision {
	return &Decision{Op: op, Allowed: true, Rule: rule, Stream: allowable[op].stream,
		Hijack: allowable[op].hijack}
}

// Container is what the daemon reported about a container.
type Container struct {
	ID     string
	Name   string
	Labels map[string]string
	// Names are a list entry's names ("/name"), in a container list.
	Names []string
	// Inspect is the daemon's inspect answer, when the resolver fetched a
	// fresh one.
	Inspect []byte
	// fields are the parts of Inspect found by ReadContainer.
	fields *containerFields
}

// Exec is what the daemon reported about an exec instance.
type Exec struct {
	ID          string
	ContainerID string
	Inspect     []byte
}

// Network is what the daemon reported about a network.
type Network struct {
	ID      string
	Name    string
	Inspect []byte
}

// answerVersion is the API version for a lookup: the client's when the
// lookup's answer is passed to the client (an inspect must have the shape
// the client asked for), none otherwise, so that the daemon's own version
// serves a lookup whatever version the client names.
func answerVersion(call *Call, answered bool) string {
	if answered {
		return call.Version
	}
	return ""
}

// Resolver looks targets up. The proxy asks the daemon; policy test reads
// fixtures. Both feed the same decision code.
type Resolver interface {
	// Container resolves a name, full ID or ID prefix. With inspect set,
	// the answer must carry a fresh inspect body.
	Container(ctx context.Context, version, ref string, inspect bool) (*Container, error)
	// Exec resolves an exec ID.
	Exec(ctx context.Context, version, id string) (*Exec, error)
	// Network resolves a network name, ID or ID prefix.
	Network(ctx context.Context, version, ref string) (*Network, error)
	// ListContainers lists every container, stopped ones too, with its ID,
	// names and labels.
	ListContainers(ctx context.Context, version string) ([]*Container, error)
}

// LookupError is the daemon's error answer to a target lookup: no such
// container (404), or a request it refuses (400 for an API version newer
// than it speaks). Message is the daemon's own text.
type LookupError struct {
	Status  int
	Message string
}

func (e *LookupError) Error() string { return e.Message }

// notFound is the lookup error for an unknown reference.
func notFound(format string, args ...any) *LookupError {
	return &LookupError{Status: http.StatusNotFound, Message: fmt.Sprintf(format, args...)}
}

// resolved turns a lookup error into a decision that passes the daemon's
// answer on, or returns the error when the daemon could not be asked. Of
// the daemon's refusals of a lookup, only one says nothing about what
// exists and passes on: an API version it does not speak. Every other one
// (no such target, an ID prefix that fits several, in the words and
// status of any daemon version: 20.10 answers 500 to an ambiguous container
// prefix) is answered with the same words as a target the client may not
// see, so that no answer tells what exists. Other daemon failures (5xx)
// pass on.
func resolved(op Op, err error, notFound string) (*Decision, error) {
	var le *LookupError
	if errors.As(err, &le) {
		d := &Decision{Op: op, Status: le.Status, Rule: RuleLookup, Reason: le.Message}
		if le.Status >= 400 && le.Status < 500 && !versionRefused(le) || ambiguousPrefix(le) {
			d.Status, d.Public = http.StatusNotFound, notFound
		}
		return d, nil
	}
	return nil, &ResolveError{Op: op, Err: err}
}

// ambiguousPrefix reports whether the daemon refused a container lookup
// because several containers have the ID prefix (20.10: 500 "Multiple IDs
// found with provided prefix"; later versions: 400, in lower case).
func ambiguousPrefix(le *LookupError) bool {
	return strings.Contains(strings.ToLower(le.Message), "multiple ids found")
}

// versionRefused reports whether the daemon refused a lookup for its API
// version ("client version 1.51 is too new. Maximum supported API version
// is 1.41"). The message starts with the daemon's words, never with the
// client's reference.
func versionRefused(le *LookupError) bool {
	return le.Status == http.StatusBadRequest && strings.HasPrefix(le.Message, "client version ")
}

// hidden is the refusal of a target the client may not see: the audit
// log has the reason, the client an answer like the daemon's for a target
// that does not exist.
func hidden(op Op, notFound, format string, args ...any) *Decision {
	d := refuse(op, RuleDefaultDeny, format, args...)
	d.Status, d.Public = http.StatusNotFound, notFound
	return d
}

// ResolveError reports that a target could not be looked up because the
// daemon could not be asked: no decision was made.
type ResolveError struct {
	Op  Op
	Err error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("looking up the target of %s: %v", e.Op, e.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// objectID matches what can be an object's ID or ID prefix in the
// daemon's words: a run of 12 to 64 lowercase hex digits.
var objectID = regexp.MustCompile(`\b[0-9a-f]{12,64}\b`)

// RedactIDs replaces in a daemon answer every object ID but a prefix of
// keep (the target's own ID) with RedactedValue.
func RedactIDs(answer []byte, keep string) []byte {
	return objectID.ReplaceAllFunc(answer, func(id []byte) []byte {
		if keep != "" && strings.HasPrefix(keep, string(id)) {
			return id
		}
		return []byte(RedactedValue)
	})
}
