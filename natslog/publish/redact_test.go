package publish_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/redact"
)

// A secret across the 16 KiB cut of a long line, at every offset around
// it and in several forms, reaches neither the stream nor stdout.
func TestWriterMasksBeforeCutting(t *testing.T) {
	const secret = "ghp_0123456789abcdefXYZsecret"
	forms := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), hex.EncodeToString([]byte(secret))}
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "cut")
	a := logtest.StartArchiver(t, s.URL(), store)
	var stdout bytes.Buffer
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "cut", Stdout: &stdout, Redact: redact.New(secret)})
	w := p.Writer("stdout", "build")
	masks := 0
	for _, f := range forms {
		for off := natslog.MaxLineBytes - len(f) - 1; off <= natslog.MaxLineBytes+1; off++ {
			line := strings.Repeat("a", off) + f + strings.Repeat("b", natslog.MaxLineBytes)
			for _, c := range chunks(line+"\n", 4000) {
				fmt.Fprint(w, c)
			}
			masks++
		}
	}
	logtest.ClosePublisher(t, p)
	logtest.WaitFor(t, a, "cut", p.LastLine())
	// The pieces put back together: a secret cut in two shows again.
	stored := strings.Join(logtest.Texts(logtest.StoredLines(t, store, "cut")), "")
	printed := strings.ReplaceAll(stdout.String(), "\n[build] ", "")
	for _, f := range forms {
		for name, out := range map[string]string{"stream": stored, "stdout": printed} {
			if strings.Contains(out, f) {
				t.Errorf("%s: %q got out", name, f)
			}
		}
	}
	if got := strings.Count(stored, redact.Mask); got != masks {
		t.Errorf("stream: %d masks, want %d", got, masks)
	}
}
