package slipway

import (
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// BuildArg is one of a project's build arguments: the value a Dockerfile's
// ARG NAME gets (podman build --build-arg NAME=VALUE). Build arguments are
// settings, not secrets: the API and the CLI show their values, and they
// travel in the deployment's workflow history. Secrets go through
// SecretStore.
type BuildArg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Limits on a project's build arguments. They keep a deployment's workflow
// input and podman's command line small.
const (
	// MaxBuildArgs is how many build arguments a project may have.
	MaxBuildArgs = 64
	// MaxBuildArgNameBytes bounds a build argument's name.
	MaxBuildArgNameBytes = 128
	// MaxBuildArgValueBytes bounds one value.
	MaxBuildArgValueBytes = 4 << 10
	// MaxBuildArgsBytes bounds the names and values of a project's build
	// arguments together.
	MaxBuildArgsBytes = 32 << 10
)

// buildArgNameRE is what a Dockerfile's ARG takes as a name.
var buildArgNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateBuildArgName checks a build argument's name: letters, digits and
// '_', not starting with a digit, at most MaxBuildArgNameBytes.
func ValidateBuildArgName(name string) error {
	if !buildArgNameRE.MatchString(name) || len(name) > MaxBuildArgNameBytes {
		return Errorf(EINVALID, "invalid build argument name %q: use 1-%d letters, digits and '_', not starting with a digit (the NAME of the Dockerfile's ARG NAME)", name, MaxBuildArgNameBytes)
	}
	return nil
}

// ValidateBuildArgValue checks the value of build argument name: UTF-8
// text without NUL, at most MaxBuildArgValueBytes. It may be empty.
func ValidateBuildArgValue(name, value string) error {
	switch {
	case len(value) > MaxBuildArgValueBytes:
		return Errorf(ETOOLARGE, "build argument %s is %d bytes: a value may have at most %d bytes (4 KiB)", name, len(value), MaxBuildArgValueBytes)
	case strings.ContainsRune(value, 0):
		return Errorf(EINVALID, "build argument %s contains a NUL byte, which cannot be passed to a build", name)
	case !utf8.ValidString(value):
		return Errorf(EINVALID, "build argument %s is not UTF-8 text", name)
	}
	return nil
}

// ValidateBuildArgs checks a project's whole set of build arguments: each
// name and value, no name twice, at most MaxBuildArgs of them and
// MaxBuildArgsBytes in all.
func ValidateBuildArgs(args []BuildArg) error {
	seen := make(map[string]bool, len(args))
	total := 0
	for _, a := range args {
		if err := ValidateBuildArgName(a.Name); err != nil {
			return err
		}
		if err := ValidateBuildArgValue(a.Name, a.Value); err != nil {
			return err
		}
		if seen[a.Name] {
			return Errorf(EINVALID, "build argument %s is given twice", a.Name)
		}
		seen[a.Name] = true
		total += len(a.Name) + len(a.Value)
	}
	if len(args) > MaxBuildArgs {
		return Errorf(ETOOLARGE, "%d build arguments: a project may have at most %d", len(args), MaxBuildArgs)
	}
	if total > MaxBuildArgsBytes {
		return Errorf(ETOOLARGE, "the build arguments take %d bytes: a project's names and values may take at most %d bytes (32 KiB) in all", total, MaxBuildArgsBytes)
	}
	return nil
}

// ParseBuildArg reads NAME=VALUE (as in --build-arg NAME=VALUE; VALUE may
// be empty and may contain '=') and checks the name and the value.
func ParseBuildArg(s string) (BuildArg, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return BuildArg{}, Errorf(EINVALID, "invalid build argument %q: use NAME=VALUE (NAME= for an empty value)", s)
	}
	a := BuildArg{Name: name, Value: value}
	if err := ValidateBuildArgName(name); err != nil {
		return BuildArg{}, err
	}
	if err := ValidateBuildArgValue(name, value); err != nil {
		return BuildArg{}, err
	}
	return a, nil
}

// SortBuildArgs orders args by name, the order they are stored and shown
// in.
func SortBuildArgs(args []BuildArg) {
	slices.SortFunc(args, func(a, b BuildArg) int { return strings.Compare(a.Name, b.Name) })
}

// ChangeBuildArgs returns cur with the arguments of set added or replaced
// and those named in unset removed, sorted by name, after checking the
// result with ValidateBuildArgs. Naming an argument in both set and
// unset, or twice in either, is EINVALID; unsetting one cur lacks is
// ENOTFOUND. project names the project in messages. cur is not changed.
func ChangeBuildArgs(project string, cur, set []BuildArg, unset []string) ([]BuildArg, error) {
	given := map[string]bool{}
	for _, a := range set {
		if err := ValidateBuildArgName(a.Name); err != nil {
			return nil, err
		}
		if given[a.Name] {
			return nil, Errorf(EINVALID, "build argument %s is given twice", a.Name)
		}
		given[a.Name] = true
	}
	for _, name := range unset {
		if given[name] {
			return nil, Errorf(EINVALID, "build argument %s is both set and unset: give it once", name)
		}
		given[name] = true
	}
	out := slices.Clone(cur)
	for _, name := range unset {
		i := slices.IndexFunc(out, func(a BuildArg) bool { return a.Name == name })
		if i < 0 {
			return nil, Errorf(ENOTFOUND, "project %s has no build argument %q to unset", project, name)
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, a := range set {
		if i := slices.IndexFunc(out, func(b BuildArg) bool { return b.Name == a.Name }); i >= 0 {
			out[i].Value = a.Value
		} else {
			out = append(out, a)
		}
	}
	SortBuildArgs(out)
	if err := ValidateBuildArgs(out); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// BuildArgsMap returns args as the builder takes them, name to value; nil
// when there are none.
func BuildArgsMap(args []BuildArg) map[string]string {
	if len(args) == 0 {
		return nil
	}
	m := make(map[string]string, len(args))
	for _, a := range args {
		m[a.Name] = a.Value
	}
	return m
}
