package dockertest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxRecordedBody caps how much of each request body a Relay keeps.
const maxRecordedBody = 1 << 20

// RecordedRequest is one HTTP request a Relay saw on its way to the daemon.
type RecordedRequest struct {
	// Method is the request method.
	Method string
	// Target is the request-target exactly as sent, e.g.
	// /v1.41/containers/json?all=1.
	Target string
	// Header holds the request headers.
	Header http.Header
	// Body is the request body, without chunked framing (at most 1 MiB).
	Body []byte
	// Time is when the relay finished reading the request head.
	Time time.Time
}

// Relay is a recording pass-through in front of a daemon socket: it listens
// on a unix socket of its own, copies bytes both ways unchanged, and records
// every HTTP request that goes upstream. Once a connection is upgraded (101)
// or turned into a Docker raw stream, the rest of it is copied unparsed.
// Stop and Start make the "daemon" go away and come back on the same path.
type Relay struct {
	upstream string
	path     string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	requests []*RecordedRequest
	wg       sync.WaitGroup
}

// StartRelay starts a Relay on a fresh unix socket that forwards to the
// unix socket upstream (empty means SocketPath). It is stopped and its
// directory removed on cleanup.
func StartRelay(t testing.TB, upstream string) *Relay {
	t.Helper()
	if upstream == "" {
		upstream = SocketPath
	}
	// t.TempDir paths can exceed the 108-byte limit of unix socket paths.
	dir, err := os.MkdirTemp("", "sockpin-relay-")
	if err != nil {
		t.Fatalf("creating relay directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &Relay{
		upstream: strings.TrimPrefix(upstream, "unix://"),
		path:     filepath.Join(dir, "docker.sock"),
		conns:    map[net.Conn]struct{}{},
	}
	if err := r.Start(); err != nil {
		t.Fatalf("starting relay: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Path returns the relay's socket path.
func (r *Relay) Path() string {
	return r.path
}

// Start listens on the relay's path again after Stop.
func (r *Relay) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		return errors.New("relay already running")
	}
	ln, err := net.Listen("unix", r.path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", r.path, err)
	}
	r.ln = ln
	r.wg.Add(1)
	go r.accept(ln)
	return nil
}

// Stop closes the listener, which removes the socket file, and every open
// connection in both directions, as a daemon that goes away would.
func (r *Relay) Stop() {
	r.mu.Lock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Requests returns the requests recorded since the start or the last Reset.
func (r *Relay) Requests() []RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecordedRequest, len(r.requests))
	for i, rec := range r.requests {
		out[i] = *rec
		out[i].Body = slices.Clone(rec.Body)
	}
	return out
}

// Reset forgets the recorded requests.
func (r *Relay) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

func (r *Relay) accept(ln net.Listener) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("unix", r.upstream)
		if err != nil {
			c.Close()
			continue
		}
		if !r.track(c, up) {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.relay(c, up)
			r.untrack(c, up)
		}()
	}
}

// track registers a connection pair, unless the relay was stopped meanwhile.
func (r *Relay) track(conns ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *Relay) untrack(conns ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(r.conns, c)
	}
}

func (r *Relay) record(req RecordedRequest) *RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, &req)
	return &req
}

func (r *Relay) appendBody(rec *RecordedRequest, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	room := max(0, maxRecordedBody-len(rec.Body))
	rec.Body = append(rec.Body, p[:min(room, len(p))]...)
}

// exchange is a request whose response the daemon side still has to read.
type exchange struct {
	method string
	// hijack is non-nil when the request may turn the connection into a
	// raw stream; the daemon side answers whether it did.
	hijack chan bool
}

// relay copies one connection pair until both directions end. Parsing only
// observes: the bytes forwarded are the bytes received.
func (r *Relay) relay(client, up net.Conn) {
	pending := make(chan exchange, 64)
	respDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.clientSide(client, up, pending, respDone)
	}()
	r.daemonSide(client, up, pending)
	close(respDone)
	wg.Wait()
}

// heldReader keeps what the parser reads from the client until it is
// forwarded.
type heldReader struct {
	src io.Reader
	buf bytes.Buffer
}

func (h *heldReader) Read(p []byte) (int, error) {
	n, err := h.src.Read(p)
	h.buf.Write(p[:n])
	return n, err
}

// clientStream is the client->daemon direction. A request's bytes go
// upstream only once it is recorded, so a client holding the answer always
// finds its request in Requests.
type clientStream struct {
	held *heldReader
	br   *bufio.Reader
	up   net.Conn
}

// forward sends upstream the bytes the parser has consumed.
func (s *clientStream) forward() error {
	_, err := s.up.Write(s.held.buf.Next(s.held.buf.Len() - s.br.Buffered()))
	return err
}

// forwardAll sends upstream everything read from the client so far.
func (s *clientStream) forwardAll() error {
	_, err := s.up.Write(s.held.buf.Next(s.held.buf.Len()))
	return err
}

// clientSide parses client->daemon traffic until EOF, a parse error or a
// hijack, then copies the rest raw.
func (r *Relay) clientSide(client, up net.Conn, pending chan<- exchange, respDone <-chan struct{}) {
	defer closeWrite(up)
	defer close(pending)
	held := &heldReader{src: client}
	s := &clientStream{held: held, br: bufio.NewReader(held), up: up}
	for r.nextRequest(s, pending, respDone) {
	}
	if s.forwardAll() == nil {
		io.Copy(up, client)
	}
}

// nextRequest records and forwards one request and reports whether the
// connection still carries HTTP requests after it.
func (r *Relay) nextRequest(s *clientStream, pending chan<- exchange,
	respDone <-chan struct{},
) bool {
	req, err := http.ReadRequest(s.br)
	if err != nil {
		return false
	}
	rec := r.record(RecordedRequest{
		Method: req.Method, Target: req.RequestURI, Header: req.Header, Time: time.Now(),
	})
	ex := exchange{method: req.Method}
	if mayHijack(req) {
		ex.hijack = make(chan bool, 1)
	}
	select {
	case pending <- ex:
	case <-respDone:
		return false
	}
	if s.forward() != nil {
		return false
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := req.Body.Read(buf)
		r.appendBody(rec, buf[:n])
		if s.forward() != nil {
			return false
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false
		}
	}
	if ex.hijack == nil {
		return true
	}
	// The bytes after a hijacking request are a raw stream, not HTTP: wait
	// for the daemon's answer before parsing further.
	select {
	case hijacked := <-ex.hijack:
		return !hijacked
	case <-respDone:
		return false
	}
}

// daemonSide parses daemon->client traffic, one response per pending
// request, until a hijack or an error, then copies the rest raw.
func (r *Relay) daemonSide(client, up net.Conn, pending <-chan exchange) {
	defer closeWrite(client)
	br := bufio.NewReader(io.TeeReader(up, client))
	for {
		// Wait for the daemon's next bytes, not for the next request: a
		// daemon that closes an idle connection must close it for the
		// client too.
		if _, err := br.Peek(1); err != nil {
			break
		}
		ex, ok := <-pending
		if !ok {
			break
		}
		resp, err := readFinalResponse(br, ex.method)
		if err != nil {
			if ex.hijack != nil {
				ex.hijack <- true
			}
			break
		}
		hijacked := resp.StatusCode == http.StatusSwitchingProtocols ||
			(ex.hijack != nil && isRawStream(resp.Header.Get("Content-Type")))
		if ex.hijack != nil {
			ex.hijack <- hijacked
		}
		if hijacked {
			break
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			break
		}
	}
	io.Copy(client, up)
}

// readFinalResponse reads one response, skipping informational ones other
// than 101.
func readFinalResponse(br *bufio.Reader, method string) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// hijackPath matches the Engine API endpoints that can hijack a connection.
var hijackPath = regexp.MustCompile(
	`^(/v[0-9]+\.[0-9]+)?/(containers/[^/]+/attach|exec/[^/]+/start)$`)

func mayHijack(req *http.Request) bool {
	return req.Header.Get("Upgrade") != "" || hijackPath.MatchString(req.URL.Path)
}

func isRawStream(contentType string) bool {
	return strings.HasPrefix(contentType, "application/vnd.docker.raw-stream") ||
		strings.HasPrefix(contentType, "application/vnd.docker.multiplexed-stream")
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// String describes a recorded request as "METHOD TARGET".
func (rr RecordedRequest) String() string {
	return rr.Method + " " + rr.Target
}

// Targets returns "METHOD TARGET" for each request, for compact comparisons.
func Targets(reqs []RecordedRequest) []string {
	out := make([]string, len(reqs))
	for i, rr := range reqs {
		out[i] = rr.String()
	}
	return out
}
