package natslog

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// TestAppendLineJSON: the Publisher's hand-written encoding decodes to the
// same line as encoding/json's.
func TestAppendLineJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 21, 40, 15, 796000123, time.UTC)
	texts := []string{
		"", "plain", `quote " and \ backslash`, "tab\tcr\rnl\n", "\x00\x01\x1f\x7f",
		"<html> & 'x'", "ünïcödé €", "line\u2028sep\u2029para", "\x1b[31mred\x1b[0m", "\u00e2\u0080",
	}
	for _, text := range texts {
		for _, step := range []string{"", "build 3/9"} {
			l := slipway.LogLine{Deployment: "d-1", N: 42, Time: at, Stream: "stderr", Step: step, Text: text}
			got, ok := AppendLineJSON(nil, &l)
			if !ok {
				t.Fatalf("AppendLineJSON(%q) failed", text)
			}
			var back slipway.LogLine
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("AppendLineJSON(%q) = %s: not JSON: %v", text, got, err)
			}
			if back != l {
				t.Errorf("AppendLineJSON(%q) decodes to %+v, want %+v", text, back, l)
			}
			want, _ := json.Marshal(l)
			var a, b any
			_ = json.Unmarshal(want, &a)
			_ = json.Unmarshal(got, &b)
			if ja, _ := json.Marshal(a); string(ja) != func() string { jb, _ := json.Marshal(b); return string(jb) }() {
				t.Errorf("AppendLineJSON(%q) = %s, encoding/json says %s", text, got, want)
			}
		}
	}
	l := slipway.LogLine{Deployment: "d", N: 1, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, ok := AppendLineJSON(nil, &l); ok {
		t.Error("AppendLineJSON accepted the year 10000, which encoding/json refuses")
	}
}

// TestDecodeFast: the decoder for the Publisher's own messages reads what
// AppendLineJSON writes (alone and in batches) exactly as encoding/json
// does, and leaves anything else to encoding/json.
func TestDecodeFast(t *testing.T) {
	at := time.Date(2026, 11, 27, 21, 40, 15, 796000123, time.UTC)
	texts := []string{
		"", "plain", `quote " and \ backslash`, "tab\tcr\rnl\n", "\x00\x01\x1f\x7f",
		"<html> & 'x'", "ünïcödé €", "line\u2028sep\u2029para", "\x1b[31mred\x1b[0m", "\u00e2\u0080", "\U0001F600 emoji",
	}
	var all []slipway.LogLine
	batch := []byte{'['}
	for i, text := range texts {
		for _, step := range []string{"", "build 3/9", `step "quoted"`} {
			l := slipway.LogLine{Deployment: "d-1", N: int64(len(all) + 1), Time: at.Add(time.Duration(i) * time.Hour), Stream: "stderr", Step: step, Text: text}
			data, _ := AppendLineJSON(nil, &l)
			got, ok := decodeFast(data)
			if !ok || len(got) != 1 || got[0] != l {
				t.Errorf("decodeFast(%s) = %+v, %v; want %+v", data, got, ok, l)
			}
			if len(all) > 0 {
				batch = append(batch, ',')
			}
			batch = append(batch, data...)
			all = append(all, l)
		}
	}
	batch = append(batch, ']')
	got, ok := decodeFast(batch)
	var want []slipway.LogLine
	if err := json.Unmarshal(batch, &want); err != nil {
		t.Fatal(err)
	}
	if !ok || len(got) != len(want) {
		t.Fatalf("decodeFast(batch) = %d lines, %v; want %d", len(got), ok, len(want))
	}
	for i := range got {
		if got[i] != want[i] || got[i] != all[i] {
			t.Errorf("batch line %d = %+v, encoding/json %+v", i, got[i], want[i])
		}
	}
	// Not the Publisher's shape: left to encoding/json, which still reads
	// the valid ones.
	for _, data := range []string{
		`{"n":1,"deployment":"d","time":"2026-01-01T00:00:00Z","stream":"stdout","text":"x"}`,
		`{"deployment":"d","n":1,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"x","extra":1}`,
		`{"deployment":"d","n":-1,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"x"}`,
		`{"deployment":"d","n":1,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"x"} trailing`,
		`[{"deployment":"d","n":1,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"x"},]`,
		`[]`,
	} {
		if got, ok := decodeFast([]byte(data)); ok {
			t.Errorf("decodeFast(%s) = %+v, want it left to encoding/json", data, got)
		}
	}
	// Invalid UTF-8 (never written by the Publisher) as encoding/json reads it.
	bad := []byte("{\"deployment\":\"d\",\"n\":1,\"time\":\"2026-01-01T00:00:00Z\",\"stream\":\"stdout\",\"text\":\"bad \xff utf-8\"}")
	var wantBad slipway.LogLine
	_ = json.Unmarshal(bad, &wantBad)
	if got, err := DecodeLines(bad); err != nil || len(got) != 1 || got[0] != wantBad {
		t.Errorf("DecodeLines(%q) = %+v, %v; want %+v", bad, got, err, wantBad)
	}
}
