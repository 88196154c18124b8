package template

import (
	"maps"
	"slices"
	"strings"
)

// imageConfig is what instructions change besides files.
type imageConfig struct {
	Env        []string          `json:"env,omitempty"` // KEY=VALUE, in order
	User       string            `json:"user,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Ports      []string          `json:"ports,omitempty"`
	Shell      []string          `json:"shell,omitempty"`
	StopSignal string            `json:"stopSignal,omitempty"`
	Volumes    []string          `json:"volumes,omitempty"`
	// Healthcheck is Docker's test form: ["CMD", ...], ["CMD-SHELL", cmd] or
	// ["NONE"].
	Healthcheck []string `json:"healthcheck,omitempty"`
}

func (c *imageConfig) getenv(k string) (string, bool) {
	for _, kv := range slices.Backward(c.Env) {
		if name, v, _ := strings.Cut(kv, "="); name == k {
			return v, true
		}
	}
	return "", false
}

func (c *imageConfig) setenv(k, v string) {
	c.Env = slices.DeleteFunc(c.Env, func(kv string) bool { name, _, _ := strings.Cut(kv, "="); return name == k })
	c.Env = append(c.Env, k+"="+v)
}

// clone copies the configuration's slices and maps, so that a stage built
// on another changes nothing of it.
func (c imageConfig) clone() imageConfig {
	c.Env, c.Cmd, c.Entrypoint = slices.Clone(c.Env), slices.Clone(c.Cmd), slices.Clone(c.Entrypoint)
	c.Ports, c.Shell, c.Volumes, c.Healthcheck = slices.Clone(c.Ports), slices.Clone(c.Shell), slices.Clone(c.Volumes), slices.Clone(c.Healthcheck)
	if c.Labels != nil {
		labels := make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	return c
}

// shellOf is the shell of shell-form commands.
func (c *imageConfig) shellOf() []string {
	if len(c.Shell) > 0 {
		return c.Shell
	}
	return []string{"/bin/sh", "-c"}
}

// env is the variables a word of the stage may name: ENV, then the ARGs.
type stageEnv struct{ st *buildState }

func (e stageEnv) Get(k string) (string, bool) {
	if v, ok := e.st.cfg.getenv(k); ok {
		return v, true
	}
	v, ok := e.st.args[k]
	return v, ok
}

func (e stageEnv) Keys() []string {
	var out []string
	for _, kv := range e.st.cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		out = append(out, k)
	}
	for k := range e.st.args {
		out = append(out, k)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mapEnv is a plain map of variables.
type mapEnv map[string]string

func (m mapEnv) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }

func (m mapEnv) Keys() []string { return sortedKeys(m) }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
