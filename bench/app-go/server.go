package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/klauspost/compress/gzhttp"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// newHandler routes the service's API: notes under /notes, /healthz for
// the container's health check and /version.
func newHandler(s *store, log *slog.Logger) http.Handler {
	r := chi.NewRouter()
	r.Use(requestID, middleware.Recoverer, accessLog(log))
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"version": version, "revision": revision})
	})
	r.Route("/notes", func(r chi.Router) {
		r.Get("/", func(w http.ResponseWriter, req *http.Request) {
			writeJSON(w, http.StatusOK, s.list(req.URL.Query().Get("tag")))
		})
		r.Post("/", func(w http.ResponseWriter, req *http.Request) {
			var in struct {
				Title string   `json:"title"`
				Body  string   `json:"body"`
				Tags  []string `json:"tags"`
			}
			dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				writeError(w, http.StatusBadRequest, "invalid note: "+err.Error())
				return
			}
			if in.Title == "" {
				writeError(w, http.StatusBadRequest, "a note needs a title")
				return
			}
			writeJSON(w, http.StatusCreated, s.add(in.Title, in.Body, in.Tags))
		})
		r.Get("/{id}", func(w http.ResponseWriter, req *http.Request) {
			n, ok := s.get(chi.URLParam(req, "id"))
			if !ok {
				writeError(w, http.StatusNotFound, "no such note")
				return
			}
			writeJSON(w, http.StatusOK, n)
		})
		r.Delete("/{id}", func(w http.ResponseWriter, req *http.Request) {
			if !s.remove(chi.URLParam(req, "id")) {
				writeError(w, http.StatusNotFound, "no such note")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	})
	// Large note lists compress well.
	return gzhttp.GzipHandler(r)
}

// requestID gives every request an id (the caller's X-Request-Id when it
// is a UUID) and echoes it in the response.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if _, err := uuid.Parse(id); err != nil {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(withRequestID(r.Context(), id)))
	})
}

// accessLog logs one line per request.
func accessLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			start := time.Now()
			next.ServeHTTP(ww, r)
			log.Info("request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(),
				"bytes", ww.BytesWritten(), "duration", time.Since(start), "request_id", requestIDFrom(r.Context()))
		})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		slog.Warn("write response", "err", err)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
