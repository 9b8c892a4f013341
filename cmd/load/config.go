package main

import (
	"flag"
	"strings"
	"time"
)

// config is what one run measures and how hard.
type config struct {
	docker     string
	proxyBin   string
	standin    string
	policy     string
	listen     string
	rounds     int
	duration   time.Duration
	clients    int
	containers int
	cycles     int
	execBytes  int64
	logBytes   int64
	idleConns  int
	smoke      bool
	only       string
}

func defaultConfig() *config {
	return &config{
		docker:     "/var/run/docker.sock",
		proxyBin:   "bin/proxy",
		standin:    "bin/standin",
		policy:     "policy.yaml",
		listen:     "tcp",
		rounds:     5,
		duration:   3 * time.Second,
		clients:    16,
		containers: 31,
		cycles:     5,
		execBytes:  1 << 30,
		logBytes:   512 << 20,
		idleConns:  1000,
	}
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.docker, "docker", c.docker, "the daemon's socket `PATH` (the direct side)")
	fs.StringVar(&c.proxyBin, "proxy", c.proxyBin, "the proxy `BINARY` to start")
	fs.StringVar(&c.standin, "standin", c.standin, "the static stand-in `BINARY` for the test image")
	fs.StringVar(&c.policy, "policy", c.policy, "the policy `FILE` the proxy runs (a bench group is added)")
	fs.StringVar(&c.listen, "listen", c.listen, "the proxy's listener: tcp (loopback) or unix")
	fs.IntVar(&c.rounds, "rounds", c.rounds, "rounds per scenario; medians are reported")
	fs.DurationVar(&c.duration, "duration", c.duration, "length of one round of a rate scenario")
	fs.IntVar(&c.clients, "clients", c.clients, "concurrent clients of the ping and inspect scenarios")
	fs.IntVar(&c.containers, "containers", c.containers, "managed containers for the list scenario")
	fs.IntVar(&c.cycles, "cycles", c.cycles, "create-start-stop-remove cycles per round")
	fs.Int64Var(&c.execBytes, "exec-bytes", c.execBytes, "bytes of exec output per round")
	fs.Int64Var(&c.logBytes, "log-bytes", c.logBytes, "bytes of container log per round")
	fs.IntVar(&c.idleConns, "idle-conns", c.idleConns, "idle client connections for the memory scenario")
	fs.BoolVar(&c.smoke, "smoke", false, "a run of a few seconds that only shows the tool works")
	fs.StringVar(&c.only, "only", "", "run only the scenarios whose names contain one of these comma-separated `WORDS`")
}

// shrink turns a run into a smoke run.
func (c *config) shrink() {
	c.rounds, c.duration, c.containers, c.cycles = 1, 300*time.Millisecond, 3, 1
	c.execBytes, c.logBytes, c.idleConns = 4<<20, 2<<20, 50
}

// selected reports whether -only lets a scenario run.
func (c *config) selected(name string) bool {
	if c.only == "" {
		return true
	}
	for _, w := range strings.Split(c.only, ",") {
		if w != "" && strings.Contains(name, w) {
			return true
		}
	}
	return false
}
