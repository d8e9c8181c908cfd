package slipway

import (
	"context"
	"strings"
)

// LogQuery selects lines of one deployment's stored log.
type LogQuery struct {
	// Deployment is the deployment's id.
	Deployment string
	// From is the first line number wanted: lines with N >= From.
	From int64
	// Search, when not empty, keeps the lines whose text contains every
	// one of its white-space-separated terms, ignoring case; a term in
	// double quotes may contain spaces.
	Search string
	// Step, when not empty, keeps the lines of that step (exact match).
	Step string
	// Limit is the most lines returned; <= 0 means all.
	Limit int
}

// LogSearcher is a store that can search logs efficiently (the SQLite
// store uses a full-text index). Stores without it are searched line by
// line (see MatchLogLine).
type LogSearcher interface {
	// SearchLogLines returns the lines q selects, ordered by N.
	SearchLogLines(ctx context.Context, q LogQuery) ([]LogLine, error)
}

// SearchTerms splits a search into its terms: words separated by white
// space, or "quoted phrases". Empty terms are dropped.
func SearchTerms(search string) []string {
	var terms []string
	for rest := strings.TrimSpace(search); rest != ""; rest = strings.TrimSpace(rest) {
		var term string
		if rest[0] == '"' {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				term, rest = rest[1:], ""
			} else {
				term, rest = rest[1:1+end], rest[2+end:]
			}
		} else if i := strings.IndexAny(rest, " \t\r\n"); i >= 0 {
			term, rest = rest[:i], rest[i:]
		} else {
			term, rest = rest, ""
		}
		if term != "" {
			terms = append(terms, term)
		}
	}
	return terms
}

// MatchLogLine reports whether l is selected by q's Search and Step (not
// its Deployment, From or Limit). It is the reference for what
// LogSearcher implementations return.
func MatchLogLine(l LogLine, q LogQuery) bool {
	if q.Step != "" && l.Step != q.Step {
		return false
	}
	text := strings.ToLower(l.Text)
	for _, term := range SearchTerms(q.Search) {
		if !strings.Contains(text, strings.ToLower(term)) {
			return false
		}
	}
	return true
}
