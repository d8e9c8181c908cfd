package slipway

import "testing"

func TestParseLogLimits(t *testing.T) {
	for _, tc := range []struct {
		in    string
		lines int64
		ok    bool
	}{
		{"100000", 100000, true}, {"1_000", 1000, true}, {"default", 0, true}, {"0", 0, true},
		{"9", 0, false}, {"-5", 0, false}, {"lots", 0, false}, {"1.5", 0, false},
	} {
		got, err := ParseLogMaxLines(tc.in)
		if got != tc.lines || (err == nil) != tc.ok || err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("ParseLogMaxLines(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.lines, tc.ok)
		}
	}
	for _, tc := range []struct {
		in    string
		bytes int64
		ok    bool
	}{
		{"100MB", 100_000_000, true}, {"1KiB", 1024, true}, {"default", 0, true},
		{"100", 0, false}, {"-1MB", 0, false}, {"big", 0, false},
	} {
		got, err := ParseLogMaxBytes(tc.in)
		if got != tc.bytes || (err == nil) != tc.ok || err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("ParseLogMaxBytes(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.bytes, tc.ok)
		}
	}
	if got := (LogLimit{}).Effective(); got != (LogLimit{MaxLines: DefaultLogMaxLines, MaxBytes: DefaultLogMaxBytes}) {
		t.Errorf("LogLimit{}.Effective() = %+v", got)
	}
	if got, want := (LogLimit{MaxLines: 50}).String(), "50 lines or 100 MiB"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
