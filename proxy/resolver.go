package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/launchdb/sockpin/filter"
)

// maxInspectBytes bounds an inspect answer read to decide a request.
const maxInspectBytes = 4 << 20

// resolver looks targets up through the daemon. Labels of a full container
// ID never change, so they are cached; names and ID prefixes are always
// asked again, since they can point somewhere else a moment later.
type resolver struct {
	up    *Upstream
	cache *labelCache
}

func (r *resolver) get(ctx context.Context, version, path string) ([]byte, error) {
	prefix := ""
	if version != "" {
		prefix = "/v" + version
	}
	resp, err := r.up.RoundTrip(ctx, &Request{Method: http.MethodGet, Target: prefix + path})
	if err != nil {
		return nil, &upstreamError{err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInspectBytes))
	if err != nil {
		return nil, &upstreamError{err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &filter.LookupError{Status: resp.StatusCode, Message: daemonMessage(body)}
	}
	return body, nil
}

// daemonMessage extracts the text of a Docker error body.
func daemonMessage(body []byte) string {
	var e struct{ Message string }
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	return strings.TrimSpace(string(body))
}

// upstreamError means the daemon could not be reached or answered
// unreadably.
type upstreamError struct{ err error }

func (e *upstreamError) Error() string { return "daemon unreachable: " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

func isFullID(ref string) bool {
	if len(ref) != 64 {
		return false
	}
	for i := 0; i < len(ref); i++ {
		if c := ref[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (r *resolver) Container(ctx context.Context, version, ref string, inspect bool) (*filter.Container, error) {
	if !inspect && isFullID(ref) {
		if c, ok := r.cache.get(ref); ok {
			return c, nil
		}
	}
	body, err := r.get(ctx, version, "/containers/"+ref+"/json")
	if err != nil {
		return nil, err
	}
	c, err := filter.ReadContainer(body)
	if err != nil || !isFullID(c.ID) {
		return nil, &upstreamError{fmt.Errorf("unreadable inspect answer for %q", ref)}
	}
	r.cache.put(c)
	return c, nil
}

func (r *resolver) ListContainers(ctx context.Context, version string) ([]*filter.Container, error) {
	body, err := r.get(ctx, version, "/containers/json?all=1")
	if err != nil {
		return nil, err
	}
	all, err := filter.ReadContainerList(body)
	if err != nil {
		return nil, &upstreamError{fmt.Errorf("unreadable container list: %w", err)}
	}
	return all, nil
}

func (r *resolver) Exec(ctx context.Context, version, id string) (*filter.Exec, error) {
	body, err := r.get(ctx, version, "/exec/"+id+"/json")
	if err != nil {
		return nil, err
	}
	cid, err := filter.StringField(body, "ContainerID")
	if err != nil || !isFullID(cid) {
		return nil, &upstreamError{fmt.Errorf("unreadable exec inspect answer for %q", id)}
	}
	return &filter.Exec{ID: id, ContainerID: cid, Inspect: body}, nil
}

func (r *resolver) Network(ctx context.Context, version, ref string) (*filter.Network, error) {
	body, err := r.get(ctx, version, "/networks/"+ref)
	if err != nil {
		return nil, err
	}
	nid, err1 := filter.StringField(body, "Id")
	name, err2 := filter.StringField(body, "Name")
	if err1 != nil || err2 != nil || nid == "" {
		return nil, &upstreamError{fmt.Errorf("unreadable network inspect answer for %q", ref)}
	}
	return &filter.Network{ID: nid, Name: name, Inspect: body}, nil
}

// labelCache maps full container IDs to what a decision needs of them.
// It holds at most max entries; when full it forgets everything, which
// costs one inspect per container afterwards and keeps memory bounded.
type labelCache struct {
	mu  sync.RWMutex
	m   map[string]*filter.Container
	max int
}

func newLabelCache(max int) *labelCache {
	return &labelCache{m: make(map[string]*filter.Container), max: max}
}

func (c *labelCache) get(id string) (*filter.Container, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[id]
	return v, ok
}

func (c *labelCache) put(v *filter.Container) {
	entry := &filter.Container{ID: v.ID, Name: v.Name, Labels: v.Labels}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[v.ID] = entry
}
