package slipway

import (
	"regexp"
	"slices"
	"testing"
)

func TestNewToken(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewToken()
	if !regexp.MustCompile(`^slw_[A-Za-z0-9_-]{43}$`).MatchString(a) || a == b {
		t.Errorf("NewToken() = %q, %q; want two different slw_ tokens of 43 URL-safe characters", a, b)
	}
	if HashToken(a) == HashToken(b) || HashToken(a) != HashToken(" "+a+"\n") || len(HashToken(a)) != 64 {
		t.Errorf("HashToken: want 64 hex digits, equal for the same token (ignoring white space), different otherwise")
	}
	id, _ := NewTokenID()
	if !regexp.MustCompile(`^t-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("NewTokenID() = %q", id)
	}
}

func TestSearchTerms(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  one  two\tthree ", []string{"one", "two", "three"}},
		{`"a phrase" word`, []string{"a phrase", "word"}},
		{`word "unclosed phrase`, []string{"word", "unclosed phrase"}},
		{`""`, nil},
	}
	for _, tt := range tests {
		if got := SearchTerms(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("SearchTerms(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	l := LogLine{Step: "build", Text: "npm ERR! code E404"}
	for _, tt := range []struct {
		q    LogQuery
		want bool
	}{
		{LogQuery{}, true},
		{LogQuery{Search: "err e404"}, true},
		{LogQuery{Search: "err nope"}, false},
		{LogQuery{Step: "push"}, false},
		{LogQuery{Step: "build", Search: `"ERR! code"`}, true},
	} {
		if got := MatchLogLine(l, tt.q); got != tt.want {
			t.Errorf("MatchLogLine(%+v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}
