package builder_test

import (
	"encoding/json"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/dockerfile"
)

// The names Temporal records are those of the histories in flight (and
// of deploy/testdata): renaming one breaks their replay after an upgrade.
func TestRecordedNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{builder.Queue("p"), "builder-p"},
		{builder.DeploymentWorkflowID("d"), "deploy-d"},
		{builder.BuildWorkflowName, "BuildWorkflow"},
		{builder.ActivityFetch, "Fetch"},
		{builder.ActivityBuild, "Build"},
		{builder.ActivityPush, "Push"},
		{builder.SignalProgress, "progress"},
		{builder.SignalLogEnd, "log-end"},
		{builder.ErrBuildFailed, "BuildFailed"},
		{builder.ErrPushFailed, "PushFailed"},
	} {
		if c.got != c.want {
			t.Errorf("name %q, want %q as recorded", c.got, c.want)
		}
	}
}

// The inputs and results encode as they did when the histories were
// recorded (field names, omitted empty fields).
func TestPayloadsEncodeAsRecorded(t *testing.T) {
	tail := &builder.ConfigTail{Steps: []dockerfile.ConfigStep{{}}, CmdSet: true, RunEnv: []string{"A=1"}}
	for _, c := range []struct {
		v    any
		want string
	}{
		{builder.BuildInput{DeploymentID: "d", Project: "p", Repo: "r", Commit: "c", Dockerfile: "D", Context: "x", Image: "i", Dir: "/w", InputKey: "k",
			ImageConfig: []string{"CMD x"}, ConfigTail: tail, Secrets: []string{"S"}, SecretsToken: "t", BuildArgs: map[string]string{"A": "b"}},
			`{"DeploymentID":"d","Project":"p","Repo":"r","Commit":"c","Dockerfile":"D","Context":"x","Image":"i","Dir":"/w","InputKey":"k","ImageConfig":["CMD x"],"ConfigTail":{"Steps":[{"command":"","args":null,"original":""}],"CmdSet":true,"RunEnv":["A=1"]},"Secrets":["S"],"SecretsToken":"t","BuildArgs":{"A":"b"}}`},
		{builder.BuildInput{},
			`{"DeploymentID":"","Project":"","Repo":"","Commit":"","Dockerfile":"","Context":"","Image":"","Dir":"","InputKey":"","Secrets":null,"SecretsToken":""}`},
		{builder.FetchResult{Dir: "/w"}, `{"Dir":"/w"}`},
		{builder.BuildActivityResult{Steps: []slipway.BuildStep{{N: 1}}, InputKey: "k", ReusedFrom: "r", ImageConfig: []string{"CMD x"}, ConfigTail: tail},
			`{"Steps":[{"n":1,"instruction":"","cached":false,"durationMs":0}],"InputKey":"k","ReusedFrom":"r","ImageConfig":["CMD x"],"ConfigTail":{"Steps":[{"command":"","args":null,"original":""}],"CmdSet":true,"RunEnv":["A=1"]}}`},
		{builder.BuildActivityResult{}, `{"Steps":null,"InputKey":"","ReusedFrom":""}`},
		{builder.PushResult{Digest: "sha256:x"}, `{"Digest":"sha256:x"}`},
		{builder.BuildResult{Image: "i", Digest: "d", Steps: []slipway.BuildStep{{N: 1}}, Timings: map[string]int64{"fetch": 1}},
			`{"Image":"i","Digest":"d","Steps":[{"n":1,"instruction":"","cached":false,"durationMs":0}],"Timings":{"fetch":1}}`},
		{builder.FailureDetails{Step: "s", Tail: []string{"a"}}, `{"Step":"s","Tail":["a"]}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%T encodes as\n%s\nwant (as recorded)\n%s", c.v, b, c.want)
		}
	}
}

func TestVolumeLayout(t *testing.T) {
	l := builder.VolumeLayout("/data/volumes/web")
	for _, c := range []struct{ got, want string }{
		{l.Config, "/data/volumes/web/agent.json"},
		{l.Ready, "/data/volumes/web/agent.ready"},
		{l.PID, "/data/volumes/web/agent.pid"},
		{l.Log, "/data/volumes/web/agent.log"},
		{l.Mirror, "/data/volumes/web/git/mirror.git"},
		{l.Prepared, "/data/volumes/web/work/.prepared"},
		{l.Builder, "/data/volumes/web/buildah"},
		{l.OldStorage, "/data/volumes/web/podman"},
	} {
		if c.got != c.want {
			t.Errorf("layout path %q, want %q (volumes in use have this layout)", c.got, c.want)
		}
	}
}
