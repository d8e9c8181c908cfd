package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNotes(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(newHandler(newStore(func() time.Time { now = now.Add(time.Second); return now }), slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)

	post := func(body string) (*http.Response, map[string]any) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/notes", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp, v
	}
	if resp, _ := post(`{"body": "no title"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST without a title: %s, want 400", resp.Status)
	}
	resp, first := post(`{"title": "one", "tags": ["Go", " go ", "bench"]}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %s, want 201", resp.Status)
	}
	if tags, _ := json.Marshal(first["tags"]); string(tags) != `["go","bench"]` {
		t.Errorf("tags = %s, want [\"go\",\"bench\"]", tags)
	}
	post(`{"title": "two", "tags": ["other"]}`)

	resp, err := http.Get(srv.URL + "/notes?tag=GO")
	if err != nil {
		t.Fatal(err)
	}
	var list []note
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(list) != 1 || list[0].Title != "one" {
		t.Errorf("GET /notes?tag=GO = %+v, want the note \"one\"", list)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id in the response")
	}

	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/notes/"+first["id"].(string), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE: %v %v, want 204", resp.Status, err)
	}
	if resp, _ := http.Get(srv.URL + "/notes/" + first["id"].(string)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a deleted note: %s, want 404", resp.Status)
	}
}

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(newHandler(newStore(time.Now), slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	if err := checkHealth(strings.TrimPrefix(srv.URL, "http://")); err != nil {
		t.Errorf("checkHealth: %v", err)
	}
}
