// Command standin plays the processes that sockpin's integration tests need
// inside containers built FROM scratch: PostgREST, curl (for the PostgREST
// healthcheck), PgBouncer's PID 1, an idle process and a byte emitter.
//
// The mode comes from argv:
//
//	standin [serve] CONFIG   serve GET / on :3000 (STANDIN_ADDR overrides)
//	curl [-f] [-s] URL       exit 0 when GET URL answers 2xx, else 1
//	standin pgbouncer [LOG]  count SIGHUPs into LOG (default /var/run/pgbouncer-reloads)
//	standin sleep            wait for SIGTERM or SIGINT
//	standin emit N           write N bytes to stdout and exit
//
// serve answers 200 with {"config", "sha256", "project"} when the config file
// could be read at start, and 503 forever when it could not or when its
// jwt-secret starts with "standin-never-ready". Like the PostgREST wrapper of
// the real image, it exits with status 129 on SIGHUP; SIGUSR2 re-reads the
// config file, as PostgREST reloads its configuration.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const usage = `Usage: standin [serve] CONFIG   serve GET / on :3000 (STANDIN_ADDR overrides)
       curl [-f] [-s] URL       exit 0 when GET URL answers 2xx, else 1
       standin pgbouncer [LOG]  count SIGHUPs into LOG (default /var/run/pgbouncer-reloads)
       standin sleep            wait for SIGTERM or SIGINT
       standin emit N           write N bytes to stdout and exit

The process inside the test and demo images built FROM scratch: a stand-in for
PostgREST, its healthcheck's curl, PgBouncer's PID 1, an idle process and a
byte emitter.
`

// neverReady is the jwt-secret prefix that keeps serve answering 503.
const neverReady = "standin-never-ready"

// defaultReloadLog is where pgbouncer mode records SIGHUPs by default.
const defaultReloadLog = "/var/run/pgbouncer-reloads"

// pgbouncerINI is hashed into every reload line so tests can tell which
// version of the file a reload saw.
const pgbouncerINI = "/etc/pgbouncer/pgbouncer.ini"

func main() {
	log.SetFlags(0)
	log.SetPrefix("standin: ")
	os.Exit(run(os.Args))
}

func run(args []string) int {
	if filepath.Base(args[0]) == "curl" {
		return curl(args[1:])
	}
	mode, rest := "serve", args[1:]
	if len(rest) > 0 {
		switch rest[0] {
		case "serve", "pgbouncer", "sleep", "emit", "curl":
			mode, rest = rest[0], rest[1:]
		case "-h", "-help", "--help", "help":
			fmt.Print(usage)
			return 0
		}
	}
	switch mode {
	case "curl":
		return curl(rest)
	case "pgbouncer":
		return pgbouncer(rest)
	case "sleep":
		sigs := notify(syscall.SIGTERM, syscall.SIGINT)
		log.Printf("sleeping")
		log.Printf("%v: exiting", <-sigs)
		return 0
	case "emit":
		return emit(rest)
	}
	return serve(rest)
}

// notify returns a channel that receives sigs. Installing a handler matters
// twice: PID 1 in a container ignores signals it has no handler for, and a
// signal that arrives before the handler would kill the process.
func notify(sigs ...os.Signal) chan os.Signal {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, sigs...)
	return ch
}

// config is what serve learned from its config file.
type config struct {
	path    string
	sha256  string
	project string
	ready   bool
}

// loadConfig reads a PostgREST-style config file of `key = value` lines.
func loadConfig(path string) config {
	c := config{path: path, project: strings.TrimSuffix(filepath.Base(path), ".conf")}
	data, err := os.ReadFile(path)
	if err != nil {
		log.Printf("reading config %q: %v (answering 503)", path, err)
		return c
	}
	sum := sha256.Sum256(data)
	c.sha256 = hex.EncodeToString(sum[:])
	c.ready = true
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if id, ok := strings.CutPrefix(line, "# PostgREST config for "); ok {
			c.project = strings.TrimSpace(id)
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if strings.TrimSpace(key) == "jwt-secret" && strings.HasPrefix(value, neverReady) {
			log.Printf("jwt-secret starts with %q: never ready", neverReady)
			c.ready = false
		}
	}
	return c
}

// serve plays PostgREST: one JSON document on every path.
func serve(args []string) int {
	path := "/etc/postgrest.conf"
	if len(args) > 0 {
		path = args[0]
	}
	sigs := notify(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1,
		syscall.SIGUSR2)
	var mu sync.Mutex
	cfg := loadConfig(path)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c := cfg
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !c.ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"message":"standin not ready"}`+"\n")
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"config": c.path, "sha256": c.sha256, "project": c.project, "path": r.URL.Path,
		})
	})
	addr := os.Getenv("STANDIN_ADDR")
	if addr == "" {
		addr = ":3000"
	}
	go func() {
		log.Fatal(http.ListenAndServe(addr, nil))
	}()
	log.Printf("serving %q on %s (ready=%v)", path, addr, cfg.ready)
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			// The real image's wrapper dies with 129 on HUP (set -e after wait).
			log.Printf("SIGHUP: exiting with 129 like the PostgREST wrapper")
			return 129
		case syscall.SIGUSR1:
			log.Printf("SIGUSR1: schema cache reload (no-op)")
		case syscall.SIGUSR2:
			c := loadConfig(path)
			mu.Lock()
			cfg = c
			mu.Unlock()
			log.Printf("SIGUSR2: config reloaded (ready=%v)", c.ready)
		default:
			log.Printf("%v: exiting", sig)
			return 0
		}
	}
	return 0
}

// curl implements `curl [-f] [-s] URL` well enough for a Docker healthcheck.
func curl(args []string) int {
	var url string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			url = a
		}
	}
	if url == "" {
		fmt.Fprintln(os.Stderr, "curl: no URL given")
		return 2
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "curl: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "curl: The requested URL returned error: %d\n", resp.StatusCode)
		return 1
	}
	return 0
}

// pgbouncer plays PgBouncer's PID 1: every SIGHUP appends one line
// "<n> <RFC3339 time> <sha256 of pgbouncer.ini or ->" to the reload log.
func pgbouncer(args []string) int {
	logPath := defaultReloadLog
	if len(args) > 0 {
		logPath = args[0]
	}
	sigs := notify(syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	log.Printf("pgbouncer stand-in: recording reloads in %s", logPath)
	for n := 1; ; n++ {
		sig := <-sigs
		if sig != syscall.SIGHUP {
			log.Printf("%v: exiting", sig)
			return 0
		}
		sum := "-"
		if data, err := os.ReadFile(pgbouncerINI); err == nil {
			h := sha256.Sum256(data)
			sum = hex.EncodeToString(h[:])
		}
		line := fmt.Sprintf("%d %s %s\n", n, time.Now().UTC().Format(time.RFC3339Nano), sum)
		if err := appendFile(logPath, line); err != nil {
			log.Printf("SIGHUP %d: recording reload: %v", n, err)
			continue
		}
		log.Printf("SIGHUP %d: reload recorded", n)
	}
}

func appendFile(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// emit writes N bytes of a repeating pattern to stdout.
func emit(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: standin emit N")
		return 2
	}
	n, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "emit: bad byte count %q\n", args[0])
		return 2
	}
	buf := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	w := bufio.NewWriterSize(os.Stdout, len(buf))
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		if _, err := w.Write(chunk); err != nil {
			return 1
		}
		n -= int64(len(chunk))
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}
