package natslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/slipway-ci/slipway"
)

// DecodeLines decodes a message of the log stream: a JSON array of lines,
// or a single JSON line (as earlier versions published every line).
//
// Messages as AppendLineJSON writes them (the Publisher's, every message
// of every build, read by the Archiver and by every follower) are read by
// a decoder for exactly that shape; anything else by encoding/json.
func DecodeLines(data []byte) ([]slipway.LogLine, error) {
	data = bytes.TrimLeft(data, " \t\r\n")
	if lines, ok := decodeFast(data); ok {
		return lines, nil
	}
	if len(data) > 0 && data[0] == '[' {
		var lines []slipway.LogLine
		if err := json.Unmarshal(data, &lines); err != nil {
			return nil, err
		}
		if len(lines) == 0 {
			return nil, errors.New("no lines")
		}
		return lines, nil
	}
	var l slipway.LogLine
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, err
	}
	return []slipway.LogLine{l}, nil
}

// decodeFast decodes data (no leading space) if it is one line or an
// array of lines exactly as AppendLineJSON writes them; else it reports
// false and encoding/json decides.
func decodeFast(data []byte) ([]slipway.LogLine, bool) {
	var d lineDecoder
	if len(data) > 0 && data[0] == '{' {
		l, i, ok := d.line(data, 0)
		if !ok || !onlySpace(data[i:]) {
			return nil, false
		}
		return []slipway.LogLine{l}, true
	}
	if len(data) < 2 || data[0] != '[' {
		return nil, false
	}
	lines := make([]slipway.LogLine, 0, bytes.Count(data, []byte(`{"deployment":`)))
	for i := 1; ; {
		l, next, ok := d.line(data, i)
		if !ok || next >= len(data) {
			return nil, false
		}
		lines = append(lines, l)
		switch data[next] {
		case ',':
			i = next + 1
		case ']':
			if !onlySpace(data[next+1:]) {
				return nil, false
			}
			return lines, true
		default:
			return nil, false
		}
	}
}

func onlySpace(b []byte) bool {
	return len(bytes.TrimLeft(b, " \t\r\n")) == 0
}

// lineDecoder reads lines; it reuses the strings of the fields that repeat
// from line to line (deployment, stream, step).
type lineDecoder struct {
	deployment, stream, step string
}

// line decodes the line at data[i:] and returns where it ends.
func (d *lineDecoder) line(data []byte, i int) (l slipway.LogLine, end int, ok bool) {
	var raw []byte
	if i, ok = expect(data, i, `{"deployment":`); !ok {
		return l, 0, false
	}
	if l.Deployment, i, ok = d.str(data, i, d.deployment); !ok {
		return l, 0, false
	}
	d.deployment = l.Deployment
	if i, ok = expect(data, i, `,"n":`); !ok {
		return l, 0, false
	}
	j := i
	for j < len(data) && data[j] >= '0' && data[j] <= '9' {
		j++
	}
	if l.N, ok = parseInt(data[i:j]); !ok {
		return l, 0, false
	}
	if i, ok = expect(data, j, `,"time":`); !ok {
		return l, 0, false
	}
	if raw, i, ok = plainStr(data, i); !ok {
		return l, 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return l, 0, false
	}
	l.Time = t
	if i, ok = expect(data, i, `,"stream":`); !ok {
		return l, 0, false
	}
	if l.Stream, i, ok = d.str(data, i, d.stream); !ok {
		return l, 0, false
	}
	d.stream = l.Stream
	if next, found := expect(data, i, `,"step":`); found {
		if l.Step, i, ok = d.str(data, next, d.step); !ok {
			return l, 0, false
		}
		d.step = l.Step
	}
	if i, ok = expect(data, i, `,"text":`); !ok {
		return l, 0, false
	}
	if l.Text, i, ok = d.str(data, i, ""); !ok {
		return l, 0, false
	}
	if i, ok = expect(data, i, `}`); !ok {
		return l, 0, false
	}
	return l, i, true
}

// expect reports whether data[i:] starts with s, and where it ends.
func expect(data []byte, i int, s string) (int, bool) {
	if len(data)-i < len(s) || string(data[i:i+len(s)]) != s {
		return i, false
	}
	return i + len(s), true
}

func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n int64
	for _, c := range b {
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// plainStr returns the contents of the JSON string at data[i:] if it has
// no escape and is valid UTF-8 without control characters, and where it
// ends.
func plainStr(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			s := data[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, 0, false
}

// str decodes the JSON string at data[i:]; prev is returned instead of a
// new string when equal. Strings with escapes go through encoding/json.
func (d *lineDecoder) str(data []byte, i int, prev string) (string, int, bool) {
	if s, end, ok := plainStr(data, i); ok {
		if string(s) == prev {
			return prev, end, true
		}
		return string(s), end, true
	}
	if i >= len(data) || data[i] != '"' {
		return "", 0, false
	}
	// Find the closing quote, skipping escaped characters.
	j := i + 1
	for ; j < len(data) && data[j] != '"'; j++ {
		if data[j] == '\\' {
			j++
		}
	}
	if j >= len(data) {
		return "", 0, false
	}
	var s string
	if err := json.Unmarshal(data[i:j+1], &s); err != nil {
		return "", 0, false
	}
	return s, j + 1, true
}
