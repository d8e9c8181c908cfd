package natslog

import (
	"strconv"
	"time"

	"github.com/slipway-ci/slipway"
)

// AppendLineJSON appends l encoded as JSON, as encoding/json encodes a
// slipway.LogLine (except that it leaves '<', '>' and '&' as they are),
// without its reflection and allocations: the publisher encodes every line
// of every build, and DecodeLines reads this shape fastest. l.Text, Step and Stream must be valid UTF-8. It reports false if
// the time cannot be encoded (a year outside 0-9999), like json.Marshal.
func AppendLineJSON(b []byte, l *slipway.LogLine) ([]byte, bool) {
	if y := l.Time.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"deployment":`...)
	b = appendJSONString(b, l.Deployment)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, l.N, 10)
	b = append(b, `,"time":"`...)
	b = l.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","stream":`...)
	b = appendJSONString(b, l.Stream)
	if l.Step != "" {
		b = append(b, `,"step":`...)
		b = appendJSONString(b, l.Step)
	}
	b = append(b, `,"text":`...)
	b = appendJSONString(b, l.Text)
	return append(b, '}'), true
}

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			if c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xa8 {
				// U+2028 and U+2029, escaped as encoding/json does.
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hex[s[i+2]&0xf])
				i += 2
				start = i + 1
			}
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
