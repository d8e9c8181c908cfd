package process

import "github.com/slipway-ci/slipway/internal/leakcheck"

// defaultPath is the agent's PATH when the server has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// inherited are the only variables an agent takes from the server's
// environment: where its tools are, the locale and time zone, the home
// of an agent running as the server's user (a rootless agent gets its own,
// rootlessEnv), and what the end-to-end tests ask of every process of
// Slipway's (leakcheck; GOCOVERDIR of a coverage build). A secret the
// server was started with (a token, a cloud key) never reaches a build.
var inherited = []string{
	"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
	leakcheck.Env, "GODEBUG", "GOCOVERDIR",
}

// agentEnv is the environment an agent starts from, read from the
// server's with getenv; Config.Env and the isolation mode's variables
// (TMPDIR, and a rootless agent's HOME and XDG directories) are added to
// it.
func agentEnv(getenv func(string) string) []string {
	env := make([]string, 0, len(inherited))
	for _, k := range inherited {
		v := getenv(k)
		if k == "PATH" && v == "" {
			v = defaultPath
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}
