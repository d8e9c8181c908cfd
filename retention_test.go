package slipway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseLogAge(t *testing.T) {
	day := 24 * time.Hour
	good := []struct {
		in   string
		want time.Duration
	}{
		{"30d", 30 * day},
		{"2w", 14 * day},
		{"12h", 12 * time.Hour},
		{"90m", 90 * time.Minute},
		{"1.5d", 36 * time.Hour},
		{" 7D ", 7 * day},
		{"off", 0},
		{"0", 0},
		{"forever", 0},
	}
	for _, tt := range good {
		if got, err := ParseLogAge(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseLogAge(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, why string }{
		{"", "unknown format"},
		{"30", "unknown format"},
		{"thirty days", "unknown format"},
		{"30x", "unknown format"},
		{"-3d", "negative"},
		{"-5h", "negative"},
		{"10m", "shorter than an hour"},
		{"1000000w", "more than 100 years"},
		{"d", "unknown format"},
	}
	for _, tt := range bad {
		_, err := ParseLogAge(tt.in)
		if ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), "30d") {
			t.Errorf("ParseLogAge(%q) = %v; want EINVALID saying %q and how to write one", tt.in, err, tt.why)
		}
	}
}

func TestParseLogSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"500MB", 500e6},
		{"500 MB", 500e6},
		{"1GiB", 1 << 30},
		{"2gb", 2e9},
		{"off", 0},
		{"0", 0},
	}
	for _, tt := range good {
		if got, err := ParseLogSize(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseLogSize(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, why string }{
		{"", "unknown format"},
		{"lots", "unknown format"},
		{"500XB", "unknown format"},
		{"-1GB", "negative"},
		{"10KB", "smaller than 1 MiB"},
		{"100", "smaller than 1 MiB"},
	}
	for _, tt := range bad {
		_, err := ParseLogSize(tt.in)
		if ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), "500MB") {
			t.Errorf("ParseLogSize(%q) = %v; want EINVALID saying %q and how to write one", tt.in, err, tt.why)
		}
	}
}

func TestLogRetentionFormat(t *testing.T) {
	for _, tt := range []struct {
		r    LogRetention
		str  string
		json string
	}{
		{LogRetention{}, "keep everything", `{"maxAgeSeconds":null,"maxBytes":null}`},
		{LogRetention{MaxAge: 30 * 24 * time.Hour, MaxBytes: 500e6}, "30d, 500 MB", `{"maxAgeSeconds":2592000,"maxBytes":500000000}`},
		{LogRetention{MaxAge: 14 * 24 * time.Hour}, "2w", `{"maxAgeSeconds":1209600,"maxBytes":null}`},
		{LogRetention{MaxAge: 36 * time.Hour}, "36h", `{"maxAgeSeconds":129600,"maxBytes":null}`},
	} {
		if got := tt.r.String(); got != tt.str {
			t.Errorf("%+v.String() = %q, want %q", tt.r, got, tt.str)
		}
		b, err := json.Marshal(tt.r)
		if err != nil || string(b) != tt.json {
			t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tt.r, b, err, tt.json)
		}
		var back LogRetention
		if err := json.Unmarshal(b, &back); err != nil || back != tt.r {
			t.Errorf("json round trip of %+v = %+v, %v", tt.r, back, err)
		}
		if tt.r.MaxAge > 0 {
			if d, err := ParseLogAge(FormatLogAge(tt.r.MaxAge)); err != nil || d != tt.r.MaxAge {
				t.Errorf("ParseLogAge(FormatLogAge(%v)) = %v, %v", tt.r.MaxAge, d, err)
			}
		}
	}
}
