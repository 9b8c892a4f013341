package filter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Call is a request that is canonical and classified: an operation, its
// path parameters and its query, ready for a decision.
type Call struct {
	Op      Op
	Version string
	Params  []string
	// Query holds the query keys the operation accepts.
	Query map[string]string
}

// Body is a request body with the headers that say how to read it.
type Body struct {
	ContentType     string
	ContentEncoding string
	Data            []byte
}

var methods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true}

// Classify checks that a request line is canonical and finds its
// operation. It does no I/O. A non-nil Decision is a refusal.
func (p *Policy) Classify(method, rawTarget string) (*Call, *Decision) {
	if !methods[method] {
		return nil, malformed(OpUnknown, "method %q is not used by the Engine API", clip(method))
	}
	t, err := parseTarget(rawTarget, p.window)
	if err != nil {
		return nil, malformed(OpUnknown, "%v", err)
	}
	op, params, wrongMethod := classify(method, t.segs)
	switch {
	case op == OpUnknown && wrongMethod:
		return nil, refuse(op, RuleDefaultDeny, "method %s is not an operation on this path", method)
	case op == OpUnknown:
		return nil, refuse(op, RuleDefaultDeny, "unknown endpoint")
	case !op.Allowable():
		return nil, refuse(op, RuleDefaultDeny, "%s is never allowed", op)
	}
	call := &Call{Op: op, Version: t.version, Params: params, Query: map[string]string{}}
	accepted := allowable[op].query
	for k, v := range t.query {
		switch {
		case contains(accepted, k):
			call.Query[k] = v
		case k[0] >= 'A' && k[0] <= 'Z':
			// The daemon reads only lower-case query keys; some clients
			// repeat the whole body in the query (dockerode on create).
			// Such keys are dropped, never forwarded.
		default:
			return nil, refuse(op, RuleDefaultDeny, "query parameter %q is not accepted for %s",
				clip(k), op)
		}
	}
	return call, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Decide decides a classified call with its body. Targets are looked up
// through r only after every check that does not need them has passed, so
// a request no rule could allow never causes a lookup.
func (p *Policy) Decide(ctx context.Context, call *Call, body Body, r Resolver) (*Decision, error) {
	if d := checkBodyFraming(call.Op, body); d != nil {
		return d, nil
	}
	switch call.Op {
	case OpPing, OpVersion:
		return p.decideSystem(call)
	case OpContainerList:
		return p.decideContainerList(call)
	case OpContainerCreate:
		return p.decideCreate(call, body)
	case OpContainerInspect, OpContainerStart, OpContainerStop, OpContainerRestart,
		OpContainerKill, OpContainerRemove, OpContainerWait, OpContainerLogs:
		return p.decideContainer(ctx, call, r)
	case OpExecCreate:
		return p.decideExecCreate(ctx, call, body, r)
	case OpExecStart, OpExecInspect:
		return p.decideExec(ctx, call, body, r)
	case OpNetworkList, OpNetworkInspect:
		return p.decideNetworkRead(ctx, call, r)
	case OpNetworkConnect, OpNetworkDisconnect:
		return p.decideNetworkConnect(ctx, call, body, r)
	case OpImageList, OpImageInspect, OpImagePull:
		return p.decideImage(call)
	}
	return refuse(call.Op, RuleDefaultDeny, "%s is never allowed", call.Op), nil
}

// checkBodyFraming refuses bodies on operations that take none, and bodies
// the daemon could read as something other than the JSON that is checked.
func checkBodyFraming(op Op, b Body) *Decision {
	if len(b.Data) == 0 {
		return nil
	}
	if !op.TakesBody() {
		return malformed(op, "%s takes no request body", op)
	}
	if b.ContentEncoding != "" && b.ContentEncoding != "identity" {
		return malformed(op, "Content-Encoding %q is not accepted", clip(b.ContentEncoding))
	}
	mt, params, _ := strings.Cut(b.ContentType, ";")
	params = strings.TrimSpace(params)
	if strings.TrimSpace(mt) != "application/json" ||
		params != "" && !strings.EqualFold(params, "charset=utf-8") {
		return malformed(op, "Content-Type must be application/json, not %q", clip(b.ContentType))
	}
	return nil
}

// prefix is the version prefix for upstream paths.
func prefix(call *Call) string {
	if call.Version == "" {
		return ""
	}
	return "/v" + call.Version
}

func (p *Policy) decideSystem(call *Call) (*Decision, error) {
	if !p.system[call.Op] {
		return refuse(call.Op, RuleDefaultDeny, "the policy does not allow %s", call.Op), nil
	}
	d := allow(call.Op, "system")
	d.Path = prefix(call) + map[Op]string{OpPing: "/_ping", OpVersion: "/version"}[call.Op]
	return d, nil
}

var (
	refPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	execPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fullID      = execPattern
)

// boolParam reads a query flag as the daemon does: anything but "", "0",
// "no", "false" or "none" (any case, trimmed) is true.
func boolParam(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// encodeQuery renders the checked query for the upstream request.
func encodeQuery(q map[string]string) string {
	if len(q) == 0 {
		return ""
	}
	v := make(url.Values, len(q))
	for k, s := range q {
		v.Set(k, s)
	}
	return v.Encode()
}

// checkInt returns a reason when query key is present and not a whole
// number.
func checkInt(q map[string]string, key string) string {
	s, ok := q[key]
	if !ok {
		return ""
	}
	if _, err := strconv.Atoi(s); err != nil {
		return fmt.Sprintf("%s %q is not a whole number", key, clip(s))
	}
	return ""
}

// DecideHTTP makes the whole decision for a request as the proxy's HTTP
// server parsed it: classify, read the body up to maxBody bytes, decide.
// The proxy and the offline policy test both call it.
func (p *Policy) DecideHTTP(ctx context.Context, r *http.Request, maxBody int64, res Resolver) (*Decision, error) {
	call, d := p.Classify(r.Method, r.RequestURI)
	if d != nil {
		return d, nil
	}
	data, err := readBody(r.Body, maxBody)
	if errors.Is(err, errTooLarge) {
		return TooLarge(call.Op, maxBody), nil
	}
	if err != nil {
		return malformed(call.Op, "reading the request body: %v", err), nil
	}
	body := Body{
		ContentType:     r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"),
		Data:            data,
	}
	return p.Decide(ctx, call, body, res)
}

var errTooLarge = errors.New("request body too large")

// readBody reads at most limit bytes; a longer body is errTooLarge.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	if r == nil || r == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}
