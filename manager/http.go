package manager

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxBodyBytes is the request body limit, Express's default for express.json() (100 kB).
const MaxBodyBytes = 100 * 1024

// Handler returns the manager's HTTP API:
//
//	GET    /health                               no auth
//	GET    /metrics                              no auth, Prometheus
//	POST   /internal/postgrest/spawn             body {"projectId": "proj_..."}
//	DELETE /internal/postgrest/{projectId}
//	POST   /internal/postgrest/{projectId}/restart
//	GET    /internal/postgrest
//
// Every answer, errors included, is JSON. As in Express, literal path segments match
// case-insensitively, one trailing slash is ignored, and HEAD is answered for GET routes.
func (s *Service) Handler() http.Handler {
	r := mux.NewRouter()
	r.SkipClean(true)
	r.NotFoundHandler = http.HandlerFunc(notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)
	r.Use(recordRoute)

	r.HandleFunc("/health", s.handleHealth).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})).
		Methods(http.MethodGet, http.MethodHead)
	const api = "/internal/postgrest"
	r.Handle(api+"/spawn", s.requireKey(s.handleSpawn)).Methods(http.MethodPost)
	r.Handle(api+"/{projectId}", s.requireKey(s.handleDestroy)).Methods(http.MethodDelete)
	r.Handle(api+"/{projectId}/restart", s.requireKey(s.handleRestart)).Methods(http.MethodPost)
	r.Handle(api, s.requireKey(s.handleList)).Methods(http.MethodGet, http.MethodHead)

	return s.logRequests(recoverPanics(normalizePath(r)))
}

// requestInfo collects what the log line and metrics of a request need from inside the
// handlers.
type requestInfo struct {
	route   string
	project string
	err     error
}

type requestInfoKey struct{}

func infoOf(r *http.Request) *requestInfo {
	if ri, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t, err := mux.CurrentRoute(r).GetPathTemplate(); err == nil {
			infoOf(r).route = t
		}
		next.ServeHTTP(w, r)
	})
}

// logRequests writes one JSON log line per request and counts it. The X-Internal-Key
// header and bodies are never logged.
func (s *Service) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{route: "unmatched"}
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))

		level := slog.LevelInfo
		switch {
		case sw.status >= 500:
			level = slog.LevelError
		case sw.status >= 400:
			level = slog.LevelWarn
		case ri.route == "/health" || ri.route == "/metrics":
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", clip(r.URL.Path)),
			slog.Int("status", sw.status),
			slog.Int64("duration_ms", time.Since(start).Milliseconds()),
			slog.String("client", r.RemoteAddr),
		}
		if ri.project != "" {
			attrs = append(attrs, slog.String("project", ri.project))
		}
		if ri.err != nil {
			attrs = append(attrs, slog.String("error", clip(ri.err.Error())))
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
		s.metrics.requests.WithLabelValues(ri.route, r.Method, strconv.Itoa(sw.status)).Inc()
	})
}

// clip shortens what a client controls (the path, errors that quote it) in the log: a
// request may carry a megabyte of path, the log line needs the start of it.
func clip(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "...(clipped)"
	}
	return s
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				infoOf(r).err = fmt.Errorf("panic: %v", v)
				writeError(w, r, &apiError{status: http.StatusInternalServerError,
					code: "internal_error", message: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// routeWords are the literal path segments that match case-insensitively, as Express does.
var routeWords = map[string]bool{
	"health": true, "metrics": true, "internal": true, "postgrest": true,
	"spawn": true, "restart": true,
}

// normalizePath applies Express's routing tolerance before mux matches: one trailing slash
// is dropped and literal segments are lower-cased. Project IDs are left as they are, so
// the validator still sees (and refuses) upper-case IDs.
func normalizePath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			p = p[:len(p)-1]
		}
		segs := strings.Split(p, "/")
		for i, seg := range segs {
			if l := strings.ToLower(seg); routeWords[l] {
				segs[i] = l
			}
		}
		if p = strings.Join(segs, "/"); p != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = p, ""
			r2 := *r
			r2.URL = &u
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// requireKey checks X-Internal-Key in constant time: both sides are hashed first, so
// neither the content nor the length of the key leaks through timing. Repeated headers
// are joined with ", " as Node joins them, and therefore fail.
func (s *Service) requireKey(next http.HandlerFunc) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.InternalAPIKey))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.Join(r.Header.Values("X-Internal-Key"), ", ")
		if key == "" {
			writeError(w, r, &apiError{status: http.StatusUnauthorized, code: "unauthorized",
				message: "X-Internal-Key header required"})
			return
		}
		got := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			writeError(w, r, &apiError{status: http.StatusForbidden, code: "forbidden",
				message: "Invalid API key"})
			return
		}
		next(w, r)
	})
}

func (s *Service) handleHealth(w http.ResponseWriter, r *http.Request) {
	problems := s.Health(r.Context())
	if len(problems) == 0 {
		writeJSON(w, http.StatusOK, healthBody{Status: "healthy", Service: "postgrest-manager"})
		return
	}
	// The body names what is down; the detail goes to the log, since /health is open.
	checks := make(map[string]string)
	var errs []error
	for name, err := range problems {
		checks[name] = "unavailable"
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	infoOf(r).err = errors.Join(errs...)
	writeJSON(w, http.StatusServiceUnavailable,
		healthBody{Status: "unhealthy", Service: "postgrest-manager", Checks: checks})
}

// healthBody is the answer of /health, its keys in the Node manager's order.
type healthBody struct {
	Status  string            `json:"status"`
	Service string            `json:"service"`
	Checks  map[string]string `json:"checks,omitempty"`
}

func (s *Service) handleSpawn(w http.ResponseWriter, r *http.Request) {
	body, aerr := readJSONBody(w, r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	id, aerr := projectIDFromBody(body)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	infoOf(r).project = id
	res, err := s.Spawn(r.Context(), id)
	if err != nil {
		writeError(w, r, asAPIError(err, "spawn_failed"))
		return
	}
	status := http.StatusOK
	if res.Status == StatusRunning {
		status = http.StatusCreated
	}
	writeJSON(w, status, res)
}

// urlProjectID validates the {projectId} URL parameter, the ID DELETE and restart act on.
// Unlike the Node manager, a projectId in the body is ignored on these routes.
func urlProjectID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := mux.Vars(r)["projectId"]
	if !ValidProjectID(id) {
		writeError(w, r, badRequest(msgIDInvalid))
		return "", false
	}
	infoOf(r).project = id
	return id, true
}

func (s *Service) handleDestroy(w http.ResponseWriter, r *http.Request) {
	id, ok := urlProjectID(w, r)
	if !ok {
		return
	}
	removed, err := s.Destroy(r.Context(), id)
	if err != nil {
		writeError(w, r, asAPIError(err, "destroy_failed"))
		return
	}
	body := statusBody{id, "cleaned_up", "PgBouncer cleaned (container not found)"}
	if removed {
		body = statusBody{id, "stopped", "Container stopped and PgBouncer cleaned"}
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Service) handleRestart(w http.ResponseWriter, r *http.Request) {
	id, ok := urlProjectID(w, r)
	if !ok {
		return
	}
	if err := s.Restart(r.Context(), id); err != nil {
		writeError(w, r, asAPIError(err, "reload_failed"))
		return
	}
	// The message is the Node manager's; the operation is a Docker restart (see Restart).
	writeJSON(w, http.StatusOK,
		statusBody{id, "reloaded", "PostgREST configuration reloaded via SIGHUP"})
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	infos, err := s.List(r.Context())
	if err != nil {
		writeError(w, r, asAPIError(err, "list_failed"))
		return
	}
	writeJSON(w, http.StatusOK, map[string][]ContainerInfo{"containers": infos})
}

// statusBody is the body of a successful destroy or restart.
type statusBody struct {
	ProjectID string `json:"projectId"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

// readJSONBody reads the body the way express.json() does: only an application/json body is
// parsed (anything else counts as an empty object), at most MaxBodyBytes, and the top level
// must be an object or an array.
func readJSONBody(w http.ResponseWriter, r *http.Request) (any, *apiError) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return map[string]any{}, nil
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" {
		return nil, unsupportedMedia(fmt.Sprintf("unsupported charset %q", strings.ToUpper(cs)))
	}
	if ce := strings.ToLower(r.Header.Get("Content-Encoding")); ce != "" && ce != "identity" {
		return nil, unsupportedMedia(fmt.Sprintf("unsupported content encoding %q", ce))
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large",
			message: fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return nil, badRequest("could not read request body")
	}
	if len(data) == 0 {
		return map[string]any{}, nil
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		return nil, badRequest("Invalid JSON body: the top level must be an object or an array")
	}
	var body any
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, badRequest("Invalid JSON body: " + err.Error())
	}
	return body, nil
}

// projectIDFromBody applies the Node manager's rules to body.projectId without its type
// coercion: a falsy value (absent, null, false, 0, "") is missing; anything else must be a
// string matching the project ID pattern.
func projectIDFromBody(body any) (string, *apiError) {
	obj, _ := body.(map[string]any)
	v, ok := obj["projectId"]
	if !ok || v == nil || v == false || v == "" || v == float64(0) {
		return "", badRequest(msgIDRequired)
	}
	id, ok := v.(string)
	if !ok || !ValidProjectID(id) {
		return "", badRequest(msgIDInvalid)
	}
	return id, nil
}

func unsupportedMedia(msg string) *apiError {
	return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
		message: msg}
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &apiError{status: http.StatusNotFound, code: "not_found",
		message: "Cannot " + r.Method + " " + r.URL.Path})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		message: "Cannot " + r.Method + " " + r.URL.Path})
}

// errorBody is the shape of every error answer.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.cause != nil {
		infoOf(r).err = e.cause
	} else {
		infoOf(r).err = errors.New(e.code + ": " + e.message)
	}
	writeJSON(w, e.status, errorBody{Error: e.code, Message: e.message})
}

// writeJSON writes v like Express's res.json: no HTML escaping, no trailing newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal_error","message":"could not encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))))
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
