package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Readiness probing. A container is ready when GET / on port 3000 answers below 400 (what
// the image's healthcheck, curl -f, accepts), checked every readyPollInterval instead of
// after Docker's first 30 s healthcheck interval.
const (
	readyPollInterval = 250 * time.Millisecond
	readyProbeTimeout = 2 * time.Second
)

// newProbeClient returns the HTTP client for readiness probes: no proxy from the
// environment, no keep-alive (every probe must reach the current process), short timeouts.
func newProbeClient() *http.Client {
	return &http.Client{
		Timeout: readyProbeTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DisableKeepAlives:   true,
			DialContext:         (&net.Dialer{Timeout: readyProbeTimeout}).DialContext,
			TLSHandshakeTimeout: readyProbeTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// waitReady polls the container until it answers HTTP or the budget runs out. It tries the
// container name first (how platform-api reaches it on the tenant network) and falls back
// to the container's address on that network from inspect, for a manager that does not
// share Docker's DNS (for example one running on the host).
func (s *Service) waitReady(ctx context.Context, name, network string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SpawnReadyTimeout)
	defer cancel()
	byName := true
	var last error
	for {
		if byName {
			err := s.probe(ctx, name)
			if err == nil {
				return nil
			}
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) {
				byName = false
			} else {
				last = err
			}
		}
		if !byName {
			addr, err := s.containerAddr(ctx, name, network)
			if err == nil {
				err = s.probe(ctx, addr)
			}
			if err == nil {
				return nil
			}
			last = err
		}

		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("container %s did not become ready within %s: %w",
				name, s.cfg.SpawnReadyTimeout, last)
		case <-time.After(readyPollInterval):
		}
	}
}

// containerAddr returns the container's IP address on network, or an error saying why there
// is none (not running, not attached).
func (s *Service) containerAddr(ctx context.Context, name, network string) (string, error) {
	c, found, err := s.inspectContainer(ctx, name)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("container %s is gone", name)
	}
	if !isRunning(c) {
		return "", fmt.Errorf("container %s is %s", name, c.State.Status)
	}
	if c.NetworkSettings != nil {
		if ep := c.NetworkSettings.Networks[network]; ep != nil && ep.IPAddress != "" {
			return ep.IPAddress, nil
		}
	}
	return "", fmt.Errorf("container %s has no address on network %s", name, network)
}

// probe sends one GET / to host:3000.
func (s *Service) probe(ctx context.Context, host string) error {
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(s.probePort)) + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
