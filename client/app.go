package client

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway"
)

// AppSettingsInput changes a project's app settings: each non-nil field
// replaces its setting ("default" restores the default), a nil one keeps
// it. Memory is a size ("256MiB"), CPUs a number ("0.5"), HealthPath a
// path ("/healthz"), IdleTimeout and StopAfter durations ("5m", "1h"),
// Port a port ("8000").
type AppSettingsInput struct {
	Memory, CPUs, HealthPath, IdleTimeout, StopAfter, Port *string
}

// vars returns in's fields as the API's arguments, the nil ones left out.
func (in AppSettingsInput) vars(into map[string]any) map[string]any {
	for k, v := range map[string]*string{"memory": in.Memory, "cpus": in.CPUs, "healthPath": in.HealthPath,
		"idleTimeout": in.IdleTimeout, "stopAfter": in.StopAfter, "port": in.Port} {
		if v != nil {
			into[k] = *v
		}
	}
	return into
}

// SetAppSettings changes how a project's app runs and returns the project
// as changed.
func (c *Client) SetAppSettings(ctx context.Context, project string, in AppSettingsInput) (*slipway.Project, error) {
	var out struct {
		SetAppSettings slipway.Project `json:"setAppSettings"`
	}
	q := `mutation($project: String!, $memory: String, $cpus: String, $healthPath: String, $idleTimeout: String, $stopAfter: String, $port: String) {
	setAppSettings(project: $project, memory: $memory, cpus: $cpus, healthPath: $healthPath, idleTimeout: $idleTimeout, stopAfter: $stopAfter, port: $port) { ` + projectFields + ` } }`
	if err := c.do(ctx, q, in.vars(map[string]any{"project": project}), &out); err != nil {
		return nil, err
	}
	return &out.SetAppSettings, nil
}

// SetEnv creates or replaces a variable of a project's runtime
// environment. The value goes in the request's body only.
func (c *Client) SetEnv(ctx context.Context, project, name string, value []byte) (*slipway.EnvVar, error) {
	var out struct {
		SetEnv slipway.EnvVar `json:"setEnv"`
	}
	q := `mutation($p: String!, $n: String!, $v: String!) { setEnv(project: $p, name: $n, value: $v) { name updatedAt } }`
	if err := c.do(ctx, q, map[string]any{"p": project, "n": name, "v": string(value)}, &out); err != nil {
		return nil, err
	}
	out.SetEnv.Project = project
	return &out.SetEnv, nil
}

// DeleteEnv removes a variable of a project's runtime environment.
func (c *Client) DeleteEnv(ctx context.Context, project, name string) (*slipway.EnvVar, error) {
	var out struct {
		DeleteEnv slipway.EnvVar `json:"deleteEnv"`
	}
	q := `mutation($p: String!, $n: String!) { deleteEnv(project: $p, name: $n) { name updatedAt } }`
	if err := c.do(ctx, q, map[string]any{"p": project, "n": name}, &out); err != nil {
		return nil, err
	}
	out.DeleteEnv.Project = project
	return &out.DeleteEnv, nil
}

// Env lists a project's runtime environment variables (names and when
// they were set, never values).
func (c *Client) Env(ctx context.Context, project string) ([]*slipway.EnvVar, error) {
	var out struct {
		Project *struct {
			Env []*slipway.EnvVar `json:"env"`
		} `json:"project"`
	}
	if err := c.do(ctx, `query($p: String!) { project(name: $p) { env { name updatedAt } } }`, map[string]any{"p": project}, &out); err != nil {
		return nil, err
	}
	if out.Project == nil {
		return nil, &Error{Code: slipway.ENOTFOUND, Message: fmt.Sprintf("project %q not found", project)}
	}
	for _, v := range out.Project.Env {
		v.Project = project
	}
	return out.Project.Env, nil
}
