// Package proxy is sockpin's forwarding handler: it asks the filter for a
// decision on each request, sends allowed requests to the Docker daemon in
// their canonical form, narrows answers, relays streams, and writes one
// audit line per request.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/launchdb/sockpin/filter"
)

// Options are the proxy's runtime limits. Zero values take the defaults.
type Options struct {
	// MaxBodyBytes bounds a request body (413 above). Default 1 MiB.
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request body. Default 30s.
	BodyTimeout time.Duration
	// RequestTimeout bounds an ordinary request from decision to the end of
	// the answer. Streams (exec, wait, pull, stop) have no total limit.
	// Default 2m.
	RequestTimeout time.Duration
	// MaxAnswerBytes bounds an answer that must be read whole to be
	// narrowed (a list). Default 64 MiB.
	MaxAnswerBytes int64
	// CacheEntries bounds the container label cache. Default 4096.
	CacheEntries int
	// BodyBudget bounds the request body bytes held in memory at once
	// across all requests, counted as they arrive; a request whose body
	// goes beyond it gets 503. Default 64 MiB.
	BodyBudget int64
}

func (o *Options) defaults() {
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.BodyTimeout == 0 {
		o.BodyTimeout = 30 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 2 * time.Minute
	}
	if o.MaxAnswerBytes == 0 {
		o.MaxAnswerBytes = 64 << 20
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = 4096
	}
	if o.BodyBudget == 0 {
		o.BodyBudget = 64 << 20
	}
}

// Handler serves the Docker Engine API through a policy.
type Handler struct {
	policy  atomic.Pointer[filter.Policy]
	up      *Upstream
	res     *resolver
	log     *slog.Logger
	metrics *Metrics
	opts    Options
	streams streamSet
	gen     atomic.Int64
	bodies  *semaphore.Weighted
}

// New builds a handler that sends allowed requests to up.
func New(p *filter.Policy, up *Upstream, log *slog.Logger, m *Metrics, opts Options) *Handler {
	opts.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics()
	}
	h := &Handler{up: up, log: log, metrics: m, opts: opts,
		res:    &resolver{up: up, cache: newLabelCache(opts.CacheEntries)},
		bodies: semaphore.NewWeighted(opts.BodyBudget)}
	h.SetPolicy(p)
	return h
}

// Policy returns the policy in force.
func (h *Handler) Policy() *filter.Policy { return h.policy.Load() }

// SetPolicy swaps in a new policy. Requests already being decided finish
// under the policy they started with.
func (h *Handler) SetPolicy(p *filter.Policy) {
	old := h.policy.Swap(p)
	if old != nil {
		h.metrics.policyInfo.DeleteLabelValues(old.SHA256())
	}
	h.metrics.policyInfo.WithLabelValues(p.SHA256()).Set(1)
	h.metrics.generation.Set(float64(h.gen.Add(1)))
}

// Generation counts the policies loaded, 1 after start.
func (h *Handler) Generation() int64 { return h.gen.Load() }

// ServeHTTP decides one request and answers it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var budget *budgetReader
	if r.Body != nil && r.Body != http.NoBody {
		// Many large bodies at once must not run the proxy out of memory.
		// Each is charged for the bytes that arrived, so that clients who
		// announce a large body and send nothing hold nothing.
		budget = &budgetReader{ReadCloser: r.Body, sem: h.bodies}
		r.Body = budget
		defer budget.release()
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(start.Add(h.opts.BodyTimeout))
	// One deadline covers the decision and, for ordinary requests, the
	// whole exchange; streams keep only the decision under it.
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.RequestTimeout)
	defer cancel()
	d, err := h.policy.Load().DecideHTTP(ctx, r, h.opts.MaxBodyBytes, h.res)
	_ = rc.SetReadDeadline(time.Time{})
	if budget != nil && budget.exhausted {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, "sockpin: too many request bodies in flight; try again")
		h.audit(r, &filter.Decision{Op: filter.OpUnknown, Status: http.StatusServiceUnavailable,
			Rule: filter.RuleSize, Reason: "body budget exhausted"}, start, nil)
		return
	}
	if err != nil {
		h.metrics.upstreamErrors.Inc()
		var re *filter.ResolveError
		op := filter.OpUnknown
		if errors.As(err, &re) {
			op = re.Op
		}
		writeError(w, http.StatusBadGateway, "sockpin: the Docker daemon did not answer")
		h.audit(r, &filter.Decision{Op: op, Status: http.StatusBadGateway}, start, err)
		return
	}
	switch {
	case !d.Allowed:
		// A refused request ends the connection: nothing the client sent
		// after it is read as another request.
		w.Header().Set("Connection", "close")
		writeError(w, d.Status, d.Message())
		h.audit(r, d, start, nil)
	case d.Answer != nil:
		writeJSON(w, http.StatusOK, d.Answer)
		d.Status = http.StatusOK
		h.audit(r, d, start, nil)
	default:
		if d.Stream {
			ctx = r.Context()
		} else {
			_ = rc.SetWriteDeadline(start.Add(h.opts.RequestTimeout))
		}
		status, err := h.forward(ctx, w, r, d)
		d.Status = status
		if err != nil {
			h.metrics.upstreamErrors.Inc()
		}
		h.audit(r, d, start, err)
		var cut *cutError
		if errors.As(err, &cut) {
			// The answer had begun: ending it normally would tell the
			// client it was complete.
			panic(http.ErrAbortHandler)
		}
	}
}

// cutError is an answer broken off after its head was sent, because the
// daemon's side failed.
type cutError struct{ err error }

func (e *cutError) Error() string { return "answer cut off: " + e.err.Error() }
func (e *cutError) Unwrap() error { return e.err }

// budgetReader takes from the body budget what each read of a request
// body brings, and gives it all back on release. A read past the budget
// fails and marks the request exhausted. After release, reads (the server
// draining what the handler left) take nothing.
type budgetReader struct {
	io.ReadCloser
	sem       *semaphore.Weighted
	held      int64
	released  bool
	exhausted bool
}

var errBodyBudget = errors.New("body budget exhausted")

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.released {
		if !b.sem.TryAcquire(int64(n)) {
			b.exhausted = true
			return 0, errBodyBudget
		}
		b.held += int64(n)
	}
	return n, err
}

func (b *budgetReader) release() {
	b.released = true
	b.sem.Release(b.held)
	b.held = 0
}

// writeError answers in Docker's error shape, which the docker CLI prints.
func writeError(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	writeJSON(w, status, append(body, '\n'))
}

var jsonType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = jsonType
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// forward sends an allowed request upstream and relays the answer. It
// returns the status sent to the client.
func (h *Handler) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, d *filter.Decision) (int, error) {
	out := &Request{Method: r.Method, Target: d.Path, Body: d.Body, Header: make(http.Header, 4)}
	if d.Query != "" {
		out.Target += "?" + d.Query
	}
	if d.Body != nil {
		out.Header["Content-Type"] = jsonType
	}
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		out.Header["User-Agent"] = ua[:1]
	}
	if d.Op == filter.OpImagePull {
		if auth := r.Header.Get("X-Registry-Auth"); auth != "" {
			out.Header.Set("X-Registry-Auth", auth)
		}
	}
	if d.Hijack && wantsUpgrade(r) {
		return h.hijack(w, ctx, out, d)
	}
	if d.Stream {
		// A client that hangs up on a quiet stream ends it upstream too.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		if cw, ok := w.(interface{ WatchClose(func()) func() }); ok {
			defer cw.WatchClose(cancel)()
		}
	}
	resp, err := h.up.RoundTrip(ctx, out)
	if err != nil {
		return h.badGateway(w, err)
	}
	defer resp.Body.Close()
	if d.Narrows() && resp.StatusCode == http.StatusOK {
		return h.narrowed(w, resp, d)
	}
	if resp.StatusCode >= 400 {
		return h.daemonError(w, resp, d)
	}
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	return resp.StatusCode, relayBody(w, resp)
}

// maxErrorBytes bounds a daemon error answer; the daemon's are a line.
const maxErrorBytes = 64 << 10

// daemonError passes on the daemon's refusal of an allowed request without
// the IDs of other objects in its words: an error about the target can name
// a container the client may not see (the holder of a name, the container
// whose namespace it joins).
func (h *Handler) daemonError(w http.ResponseWriter, resp *http.Response, d *filter.Decision) (int, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	if err != nil {
		return h.badGateway(w, err)
	}
	body = filter.RedactIDs(body, d.ContainerID)
	copyHeader(w.Header(), resp.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, err = w.Write(body)
	return resp.StatusCode, err
}

func (h *Handler) badGateway(w http.ResponseWriter, err error) (int, error) {
	writeError(w, http.StatusBadGateway, "sockpin: the Docker daemon did not answer")
	return http.StatusBadGateway, err
}

// narrowed reads a list answer whole and passes on only what the client
// may see.
func (h *Handler) narrowed(w http.ResponseWriter, resp *http.Response, d *filter.Decision) (int, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.opts.MaxAnswerBytes+1))
	if err == nil && int64(len(body)) > h.opts.MaxAnswerBytes {
		err = errors.New("list answer is larger than the answer limit")
	}
	if err == nil {
		body, err = d.Narrow(body)
	}
	if err != nil {
		return h.badGateway(w, err)
	}
	copyHeader(w.Header(), resp.Header)
	writeJSON(w, http.StatusOK, body)
	return http.StatusOK, nil
}

// hopHeaders are connection-level headers that are never relayed.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		if !hopHeaders[k] {
			dst[k] = v
		}
	}
	if n := src.Get("Content-Length"); n != "" {
		dst.Set("Content-Length", n)
	}
}

// copyBuffers are reused for relaying bodies: a fresh 32 KiB buffer per
// request would be most of what a small request allocates.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relayBody copies an answer to the client. An answer of unknown length is
// a stream (followed output, pull progress): each piece is flushed as it
// arrives.
func relayBody(w http.ResponseWriter, resp *http.Response) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	pending, _ := resp.Body.(interface{ Buffered() int })
	stream := resp.ContentLength < 0
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			// A stream is flushed when the daemon has sent nothing more
			// yet: a follower sees each line at once, a fast stream is not
			// written in pieces.
			if stream && (pending == nil || pending.Buffered() == 0) {
				if ferr := rc.Flush(); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &cutError{err}
		}
	}
}

// auditUnread records a request the HTTP server refused before it could be
// decided (malformed, headers too large or too slow).
func (h *Handler) auditUnread(r *http.Request, status int, reason string) {
	h.audit(r, &filter.Decision{Op: filter.OpUnknown, Status: status, Rule: filter.RuleCanonical,
		Reason: reason}, time.Now(), nil)
}

// audit writes the request's one audit line and counts it.
func (h *Handler) audit(r *http.Request, d *filter.Decision, start time.Time, err error) {
	elapsed := time.Since(start)
	decision, level := "allow", slog.LevelInfo
	switch {
	case err != nil && !d.Allowed:
		decision, level = "error", slog.LevelError
	case !d.Allowed:
		decision, level = "deny", slog.LevelWarn
	case err != nil:
		level = slog.LevelError
	}
	h.metrics.requests.WithLabelValues(string(d.Op), decision).Inc()
	if !d.Stream {
		h.metrics.duration.WithLabelValues(string(d.Op)).Observe(elapsed.Seconds())
	}
	ctx := context.Background()
	if !h.log.Enabled(ctx, level) {
		return
	}
	client := r.RemoteAddr
	if client == "" || client == "@" {
		client = "unix"
	}
	attrs := []slog.Attr{
		slog.String("client", client),
		slog.String("method", r.Method),
		slog.String("path", clipPath(r.RequestURI)),
		slog.String("op", string(d.Op)),
		slog.String("decision", decision),
		slog.String("rule", d.Rule),
		slog.String("reason", d.Reason),
		slog.String("container_id", d.ContainerID),
		slog.String("project", d.Project),
		slog.Int("status", d.Status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	// A record without a caller: slog's own Log would unwind the stack for
	// one on every request.
	rec := slog.NewRecord(time.Now(), level, "request", 0)
	rec.AddAttrs(attrs...)
	_ = h.log.Handler().Handle(ctx, rec)
}

func clipPath(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
