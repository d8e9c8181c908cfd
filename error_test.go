package slipway

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{Errorf(EINVALID, "bad"), http.StatusBadRequest},
		{Errorf(ENOTFOUND, "gone"), http.StatusNotFound},
		{Errorf(ECONFLICT, "busy"), http.StatusConflict},
		{Errorf(EUNAUTHORIZED, "who"), http.StatusUnauthorized},
		{Errorf(ETOOLARGE, "big"), http.StatusRequestEntityTooLarge},
		{Errorf(ETOOMANY, "many"), http.StatusTooManyRequests},
		{Errorf(EINTERNAL, "oops"), http.StatusInternalServerError},
		{Errorf("no-such-code", "?"), http.StatusInternalServerError},
		{errors.New("EOF"), http.StatusInternalServerError},
		{fmt.Errorf("deploy x: %w", Errorf(ENOTFOUND, "gone")), http.StatusNotFound},
	}
	for _, tt := range tests {
		if got := HTTPStatus(tt.err); got != tt.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
