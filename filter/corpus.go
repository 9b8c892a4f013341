package filter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Case is one request of a cases file (the red-team corpus format): a
// request, or exact raw bytes, and whether a correct proxy allows it.
type Case struct {
	ID      string            `json:"id"`
	Class   string            `json:"class"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	Raw     string            `json:"raw"`
	Expect  string            `json:"expect"`
	Why     string            `json:"why"`
	Setup   string            `json:"setup"`
}

// ReadCases reads a JSON-lines cases file.
func ReadCases(path string) ([]Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading cases %q: %w", path, err)
	}
	var cases []Case
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var c Case
		if err := json.Unmarshal(line, &c); err != nil {
			return nil, fmt.Errorf("cases %q line %d: %w", path, i+1, err)
		}
		if c.Expect != "allow" && c.Expect != "deny" {
			return nil, fmt.Errorf("cases %q line %d: expect must be allow or deny", path, i+1)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// Bytes renders the case as the bytes a client writes: Raw as is, or the
// request line, a Host header, the case's headers, a Content-Length for a
// body that has no framing header, and the body. Header order is sorted.
func (c Case) Bytes() []byte {
	if c.Raw != "" {
		return []byte(c.Raw)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: docker\r\n", c.Method, c.Path)
	keys := make([]string, 0, len(c.Headers))
	framed := false
	for k := range c.Headers {
		keys = append(keys, k)
		lk := strings.ToLower(k)
		framed = framed || lk == "content-length" || lk == "transfer-encoding"
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\r\n", k, c.Headers[k])
	}
	if c.Body != "" && !framed {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(c.Body))
	}
	b.WriteString("\r\n")
	b.WriteString(c.Body)
	return b.Bytes()
}

// Limits are the sizes the proxy's server enforces before a decision.
type Limits struct {
	MaxHeaderBytes int
	MaxBodyBytes   int64
}

// Step is one request read from a case's bytes and its decision.
type Step struct {
	Method   string
	Target   string
	Decision *Decision
	// Refused is set when the server itself refuses the bytes before any
	// decision (malformed HTTP, headers too large); the text says why.
	Refused string
}

// Forwarded reports whether the step's request would reach the daemon.
func (s Step) Forwarded() bool { return s.Decision != nil && s.Decision.Allowed }

// Trace reads requests from raw bytes the way the proxy's server does and
// decides each, until the connection would end: a refusal closes it (so
// nothing smuggled after a refused request is ever read), and a request
// that may switch protocols turns the rest into a stream.
func (p *Policy) Trace(ctx context.Context, raw []byte, lim Limits, res Resolver) []Step {
	br := bufio.NewReader(bytes.NewReader(raw))
	var steps []Step
	for {
		if _, err := br.Peek(1); err != nil {
			return steps
		}
		head, err := headerBytes(br, lim.MaxHeaderBytes)
		if err != nil {
			return append(steps, Step{Refused: err.Error()})
		}
		req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br)))
		if err != nil {
			return append(steps, Step{Refused: "malformed HTTP: " + err.Error()})
		}
		if req.ProtoMajor != 1 {
			return append(steps, Step{Method: req.Method, Target: req.RequestURI,
				Refused: "only HTTP/1 is served"})
		}
		d, err := p.DecideHTTP(ctx, req, lim.MaxBodyBytes, res)
		if err != nil {
			return append(steps, Step{Method: req.Method, Target: req.RequestURI, Refused: err.Error()})
		}
		steps = append(steps, Step{Method: req.Method, Target: req.RequestURI, Decision: d})
		if !d.Allowed || d.Hijack || req.Close {
			return steps
		}
		// The body was read up to the limit; what is left of it stays in
		// the request's reader, which the server would drain.
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return steps
		}
	}
}

// headerBytes returns the header section of the next request, refusing one
// larger than max as the server does (431).
func headerBytes(br *bufio.Reader, max int) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if max > 0 && len(head) > max {
			return nil, errors.New("request headers are larger than " + strconv.Itoa(max) + " bytes (431)")
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("malformed HTTP: %v", err)
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(head) > len(line) {
			return head, nil
		}
	}
}

// Holds reports whether a case's trace meets its expectation: an allow
// case's request is forwarded (or answered by the daemon during the target
// lookup, such as 404 for an unknown target); in
// a deny case nothing is forwarded, except that the first request of raw
// bytes may pass when it is itself a legitimate request (legit holds
// "METHOD target" of the corpus's allow cases): the attack is what follows.
func (c Case) Holds(steps []Step, legit map[string]bool) bool {
	if c.Expect == "allow" {
		return len(steps) > 0 && (steps[0].Forwarded() ||
			steps[0].Decision != nil && steps[0].Decision.Rule == RuleLookup)
	}
	for i, s := range steps {
		first := c.Raw != "" && i == 0 && legit[s.Method+" "+s.Target]
		if s.Forwarded() && !first {
			return false
		}
	}
	return true
}

// LegitRequests collects "METHOD target" of the allow cases.
func LegitRequests(cases []Case, f *Fixtures) map[string]bool {
	out := make(map[string]bool)
	for _, c := range cases {
		if c.Expect == "allow" {
			out[c.Method+" "+f.Expand(c.Path)] = true
		}
	}
	return out
}
