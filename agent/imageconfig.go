package agent

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/dockerfile"
)

// Config-only steps. The steps a Dockerfile usually ends with (EXPOSE,
// USER, CMD, ENTRYPOINT, LABEL, ENV, STOPSIGNAL, HEALTHCHECK) change only
// the image's config, but the builder commits an image for each of them
// once an earlier step changed. When the final stage ends with such steps
// (buildFile.configTail), the agent builds the Dockerfile without them and
// Push applies them to the pushed image's config in the registry, next to
// the deployment's labels: one new config and manifest, the same layers.
// The steps are evaluated by the builder's own evaluator
// (dockerfile.Apply) and the result is written into the config as the
// builder's commit writes it (TestConfigStepsMatchTheBuilder compares the
// two).

// applyConfig applies the config-only steps of tail to cf as the builder
// would have: the config changes, a history entry per step, the creation
// time.
func applyConfig(cf *v1.ConfigFile, tail *builder.ConfigTail, now time.Time) error {
	if tail == nil || len(tail.Steps) == 0 {
		return nil
	}
	res, err := dockerfile.Apply(toDockerConfig(cf.Config), tail.Steps, tail.CmdSet, tail.RunEnv)
	if err != nil {
		return err
	}
	// What buildah's commit takes from the evaluator's config
	// (imagebuildah StageExecutor.commit).
	c := &cf.Config
	c.User = res.User
	c.ExposedPorts = nil
	for p := range res.ExposedPorts {
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[string(p)] = struct{}{}
	}
	c.Env = slices.Clone(res.Env)
	c.Cmd = slices.Clone(res.Cmd)
	c.Volumes = maps.Clone(res.Volumes)
	c.OnBuild = nonEmpty(res.OnBuild)
	c.WorkingDir = res.WorkingDir
	c.Entrypoint = nonEmpty(res.Entrypoint)
	c.Shell = nonEmpty(res.Shell)
	c.StopSignal = res.StopSignal
	c.Healthcheck = nil
	if h := res.Healthcheck; h != nil {
		c.Healthcheck = &v1.HealthConfig{Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	c.Labels = maps.Clone(res.Labels)
	for _, s := range tail.Steps {
		cf.History = append(cf.History, v1.History{Created: v1.Time{Time: now}, CreatedBy: "/bin/sh -c #(nop) " + s.Original, EmptyLayer: true})
	}
	cf.Created = v1.Time{Time: now}
	return nil
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// toDockerConfig is the part of an image's config the evaluator reads.
func toDockerConfig(c v1.Config) docker.Config {
	d := docker.Config{
		User: c.User, Env: slices.Clone(c.Env), Cmd: slices.Clone(c.Cmd), Entrypoint: slices.Clone(c.Entrypoint),
		WorkingDir: c.WorkingDir, Labels: maps.Clone(c.Labels), Volumes: maps.Clone(c.Volumes),
		Shell: slices.Clone(c.Shell), OnBuild: slices.Clone(c.OnBuild), StopSignal: c.StopSignal,
	}
	for p := range c.ExposedPorts {
		if d.ExposedPorts == nil {
			d.ExposedPorts = map[docker.Port]struct{}{}
		}
		d.ExposedPorts[docker.Port(p)] = struct{}{}
	}
	if h := c.Healthcheck; h != nil {
		d.Healthcheck = &docker.HealthConfig{Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	return d
}

// describeTail is the tail's steps for the log.
func describeTail(t *builder.ConfigTail) string {
	if t == nil {
		return ""
	}
	s := ""
	for i, st := range t.Steps {
		if i > 0 {
			s += "; "
		}
		s += st.Original
	}
	return fmt.Sprint(s)
}

// legacyTail reads the config-only instructions an agent before
// builder.ConfigTail sent (plain instructions without variables, read as
// the last steps of a stage).
func legacyTail(insts []string) (*builder.ConfigTail, error) {
	f, err := dockerfile.Parse([]byte("FROM scratch\n"+strings.Join(insts, "\n")+"\n"), dockerfile.Options{})
	if err != nil {
		return nil, fmt.Errorf("the config-only steps %q: %w", insts, err)
	}
	t := &builder.ConfigTail{}
	for _, s := range f.Stages[0].Steps[1:] {
		if !s.ConfigOnly() {
			return nil, fmt.Errorf("%s is not a config-only step", s.Original)
		}
		t.Steps = append(t.Steps, s.ConfigStep())
	}
	return t, nil
}
