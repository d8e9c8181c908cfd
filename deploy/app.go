package deploy

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway"
)

// AppSettingsInput is a change of a project's app settings as users give
// them: each non-nil field replaces its setting ("default" restores the
// default), a nil one keeps it. See slipway.ParseAppMemory and its
// siblings for what each takes.
type AppSettingsInput struct {
	// Memory is a size such as "256MiB" (--memory).
	Memory *string
	// CPUs is a number such as "0.5" (--cpus).
	CPUs *string
	// HealthPath is a path such as "/healthz" (--health-path).
	HealthPath *string
	// IdleTimeout and StopAfter are durations such as "5m" and "1h"
	// (--idle-timeout, --stop-after).
	IdleTimeout, StopAfter *string
	// Port is the port the app listens on, e.g. "8000" (--port).
	Port *string
}

// IsZero reports whether in changes nothing.
func (in AppSettingsInput) IsZero() bool {
	return in == AppSettingsInput{}
}

// parseAppSettings returns cur with the settings in given replaced, then
// checks the result as a whole (stop-after at least the idle timeout).
func parseAppSettings(cur slipway.AppSettings, in AppSettingsInput) (slipway.AppSettings, error) {
	var err error
	if in.Memory != nil {
		if cur.MemoryBytes, err = slipway.ParseAppMemory(*in.Memory); err != nil {
			return cur, err
		}
	}
	if in.CPUs != nil {
		if cur.CPUs, err = slipway.ParseAppCPUs(*in.CPUs); err != nil {
			return cur, err
		}
	}
	if in.HealthPath != nil {
		if cur.HealthPath, err = slipway.ParseAppHealthPath(*in.HealthPath); err != nil {
			return cur, err
		}
	}
	if in.IdleTimeout != nil {
		if cur.IdleTimeout, err = slipway.ParseAppDuration("idle timeout", *in.IdleTimeout); err != nil {
			return cur, err
		}
	}
	if in.StopAfter != nil {
		if cur.StopAfter, err = slipway.ParseAppDuration("stop-after", *in.StopAfter); err != nil {
			return cur, err
		}
	}
	if in.Port != nil {
		if cur.Port, err = slipway.ParseAppPort(*in.Port); err != nil {
			return cur, err
		}
	}
	return cur, cur.Validate()
}

// SetAppSettings changes how project's app runs (memory, CPUs, health
// path, idle timeout, stop-after, port): see AppSettingsInput. The
// settings are checked together: a stop-after shorter than the idle
// timeout (given or kept) is EINVALID. Apps started from now on get them.
func (s *Projects) SetAppSettings(ctx context.Context, project string, in AppSettingsInput) (*slipway.Project, error) {
	store, ok := s.cfg.Store.(slipway.AppSettingsStore)
	if !ok {
		return nil, slipway.Errorf(slipway.EINVALID, "this server's store does not keep app settings")
	}
	p, err := s.cfg.Store.Project(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", project, err)
	}
	a, err := parseAppSettings(p.App, in)
	if err != nil {
		return nil, err
	}
	if p, err = store.SetAppSettings(ctx, project, a); err != nil {
		return nil, fmt.Errorf("set the app settings of %s: %w", project, err)
	}
	return p, nil
}

// envStore returns the store of runtime environments, or an error saying
// the server keeps none.
func (s *Projects) envStore() (slipway.EnvStore, error) {
	env, ok := s.cfg.Store.(slipway.EnvStore)
	if !ok {
		return nil, slipway.Errorf(slipway.EINVALID, "this server's store keeps no runtime environment")
	}
	return env, nil
}

// SetEnv creates or replaces the variable name of project's runtime
// environment after checking its name and value (slipway.ValidateEnv:
// PORT is refused). Errors never carry the value.
func (s *Projects) SetEnv(ctx context.Context, project, name string, value []byte) (*slipway.EnvVar, error) {
	env, err := s.envStore()
	if err != nil {
		return nil, err
	}
	if err := slipway.ValidateEnv(name, value); err != nil {
		return nil, err
	}
	v, err := env.SetEnv(ctx, project, name, value)
	if err != nil {
		return nil, fmt.Errorf("set environment variable %s of %s: %w", name, project, err)
	}
	return v, nil
}

// DeleteEnv removes the variable name of project's runtime environment
// and returns its record.
func (s *Projects) DeleteEnv(ctx context.Context, project, name string) (*slipway.EnvVar, error) {
	env, err := s.envStore()
	if err != nil {
		return nil, err
	}
	v, err := env.DeleteEnv(ctx, project, name)
	if err != nil {
		return nil, fmt.Errorf("delete environment variable %s of %s: %w", name, project, err)
	}
	return v, nil
}

// Env lists project's runtime environment variables, without values.
func (s *Projects) Env(ctx context.Context, project string) ([]*slipway.EnvVar, error) {
	env, err := s.envStore()
	if err != nil {
		return nil, err
	}
	list, err := env.Env(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("environment of %s: %w", project, err)
	}
	return list, nil
}

// RuntimeEnv returns project's runtime environment, decrypted, as
// KEY=VALUE entries by name: what its app is started with (apps.Spec.Env;
// Slipway adds PORT). For starting the app only: never log, store or
// return the entries to a user.
func (s *Projects) RuntimeEnv(ctx context.Context, project string) ([]string, error) {
	env, err := s.envStore()
	if err != nil {
		return nil, err
	}
	vals, err := env.EnvValues(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("runtime environment of %s: %w", project, err)
	}
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		out = append(out, v.Name+"="+string(v.Value))
	}
	return out, nil
}
