package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/launchdb/sockpin/filter"
)

// wantsUpgrade reports whether the client asked to switch protocols.
func wantsUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return r.Header.Get("Upgrade") != ""
			}
		}
	}
	return false
}

// hijack sends a request that may switch protocols over a connection of its
// own. Only when the daemon answers 101 do both sides become a raw two-way
// stream; any other answer is relayed as an ordinary response, an error
// without the IDs of other objects.
func (h *Handler) hijack(w http.ResponseWriter, ctx context.Context, out *Request, d *filter.Decision) (int, error) {
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", "tcp")
	up, err := h.up.Dial(ctx)
	if err != nil {
		return h.badGateway(w, err)
	}
	// The exchange up to the daemon's answer head is bounded; the stream
	// after it is not.
	_ = up.SetDeadline(time.Now().Add(h.opts.RequestTimeout))
	stop := context.AfterFunc(ctx, func() { _ = up.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	upBuf := bufio.NewReader(up)
	bw := bufio.NewWriter(up)
	if err := writeRequest(bw, out); err != nil {
		up.Close()
		return h.badGateway(w, err)
	}
	resp, err := http.ReadResponse(upBuf, &http.Request{Method: out.Method})
	if err != nil {
		up.Close()
		return h.badGateway(w, err)
	}
	_ = up.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer up.Close()
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			return h.daemonError(w, resp, d)
		}
		copyHeader(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		return resp.StatusCode, relayBody(w, resp)
	}
	client, clientBuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return http.StatusInternalServerError, fmt.Errorf("taking over the client connection: %w", err)
	}
	_ = client.SetDeadline(time.Time{})
	fmt.Fprintf(clientBuf, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	_ = resp.Header.Write(clientBuf)
	clientBuf.WriteString("\r\n")
	if err := clientBuf.Flush(); err != nil {
		client.Close()
		up.Close()
		return http.StatusSwitchingProtocols, err
	}
	h.metrics.hijacked.Inc()
	defer h.metrics.hijacked.Dec()
	return http.StatusSwitchingProtocols, h.streams.run(client, clientBuf.Reader, up, upBuf)
}

// streamSet tracks hijacked connections so that shutdown can wait for them
// and then close what is left.
type streamSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func (s *streamSet) add(conns ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	for _, c := range conns {
		s.conns[c] = struct{}{}
	}
}

func (s *streamSet) remove(conns ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range conns {
		delete(s.conns, c)
	}
}

// run copies both ways until the daemon ends the stream or the client goes
// away, then closes both connections. Bytes either side had already
// buffered are passed on first. The client closing its sending side is a
// half-close, passed on to the daemon while output keeps flowing: the
// docker CLI and the manager close it right after the 101 when the exec has
// no stdin, so it cannot mean the client is gone. A client
// that is gone shows when its output cannot be written.
func (s *streamSet) run(client net.Conn, clientBuf *bufio.Reader, up net.Conn, upBuf *bufio.Reader) error {
	s.wg.Add(1)
	defer s.wg.Done()
	s.add(client, up)
	defer s.remove(client, up)
	toClient := make(chan error, 1)
	go func() {
		err := drain(client, upBuf)
		if err == nil {
			_, err = io.Copy(netConn(client), up)
		}
		toClient <- err
	}()
	toUp := make(chan struct{})
	go func() {
		defer close(toUp)
		err := drain(up, clientBuf)
		if err == nil {
			_, err = io.Copy(up, netConn(client))
		}
		cw, halfClose := up.(interface{ CloseWrite() error })
		if halfClose && err == nil {
			// The client finished sending: tell the daemon, and keep
			// relaying output until the daemon ends the stream.
			_ = cw.CloseWrite()
			return
		}
		client.Close()
		up.Close()
	}()
	// The stream is over when the daemon ends it or the client stops
	// taking output; then both sides are closed.
	err := <-toClient
	client.Close()
	up.Close()
	<-toUp
	if err != nil && !isClosedErr(err) {
		return err
	}
	return nil
}

// drain writes what br has already buffered, so that the copy after it can
// go socket to socket (the kernel's splice) instead of through the buffer.
func drain(dst io.Writer, br *bufio.Reader) error {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	head, _ := br.Peek(n)
	_, err := dst.Write(head)
	_, _ = br.Discard(n)
	return err
}

func isClosedErr(err error) bool {
	return err == nil || strings.Contains(err.Error(), "use of closed network connection")
}

// WaitStreams waits until every hijacked stream has ended or ctx is done,
// then closes the streams still open.
func (h *Handler) WaitStreams(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		h.streams.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		h.streams.mu.Lock()
		for c := range h.streams.conns {
			c.Close()
		}
		h.streams.mu.Unlock()
		<-done
	}
}
