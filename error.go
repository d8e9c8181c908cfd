package slipway

import (
	"errors"
	"fmt"
	"net/http"
)

// Application error codes. HTTPStatus maps them to HTTP statuses for every
// HTTP edge (the webhook, the API); the GraphQL error presenter shows the
// code itself (ErrorCode) as extensions.code.
const (
	ECONFLICT     = "conflict"
	EINTERNAL     = "internal"
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	ETOOLARGE     = "too_large"
	// ETOOMANY is a limit on how many of something one caller may hold
	// at once (e.g. an API token's running subscriptions).
	ETOOMANY = "too_many"
)

// Error is the one error type whose message a user sees. Anything else is
// reported to users as an internal error.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("slipway error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the application error in err's chain, or
// EINTERNAL when there is none (or "" for a nil error).
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the application
// error's message, or a generic one for internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// httpStatus is the one mapping from application error codes to HTTP
// statuses.
var httpStatus = map[string]int{
	ECONFLICT:     http.StatusConflict,
	EINTERNAL:     http.StatusInternalServerError,
	EINVALID:      http.StatusBadRequest,
	ENOTFOUND:     http.StatusNotFound,
	EUNAUTHORIZED: http.StatusUnauthorized,
	ETOOLARGE:     http.StatusRequestEntityTooLarge,
	ETOOMANY:      http.StatusTooManyRequests,
}

// HTTPStatus returns the HTTP status that answers err: the status of its
// application error's code, 500 for an internal error or an unknown code,
// and 200 for a nil error.
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if s, ok := httpStatus[ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}
