package manager

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/docker/docker/client"
)

// apiError is an error with the status, code and message the client sees. cause, when set,
// is the detail for the log; it may say more than the client should read.
type apiError struct {
	status  int
	code    string
	message string
	cause   error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.message + ": " + e.cause.Error()
	}
	return e.code + ": " + e.message
}

func (e *apiError) Unwrap() error { return e.cause }

// asAPIError returns err as an apiError, or a 500 with fallbackCode and err's text.
func asAPIError(err error, fallbackCode string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return failed(fallbackCode, err)
}

// Error codes and fixed messages of the Node manager (spec 1.9), kept for operators.
const (
	msgIDRequired = "projectId is required"
	msgIDInvalid  = "Invalid projectId format. Expected: proj_xxxxxxxxxxxxxxxx (16 hex chars)"
)

func badRequest(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", message: msg}
}

// failed returns a 500 with code whose message is err's text. err must not carry secrets.
func failed(code string, err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: code,
		message: err.Error(), cause: err}
}

// lockFailed is the error of an operation that gave up waiting for its project's lock,
// because its caller went away.
func lockFailed(code, projectID string, err error) *apiError {
	return failed(code, fmt.Errorf("waiting for another operation on %s: %w", projectID, err))
}

// withCause names what could not be reached when err (or what it wraps) is a failure to
// connect to DOCKER_HOST: the Docker client only says "Cannot connect to the Docker daemon",
// but what the manager connects to is the sockpin proxy.
func (s *Service) withCause(err error, fallbackCode string) *apiError {
	ae := asAPIError(err, fallbackCode)
	if ae.status < 500 || !client.IsErrConnectionFailed(err) {
		return ae
	}
	return &apiError{status: ae.status, code: ae.code, cause: ae.cause,
		message: "Docker API unreachable: the sockpin proxy at " + s.cfg.DockerHost +
			" (DOCKER_HOST) does not answer: " + ae.message}
}
