package slipway

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseBuildArg(t *testing.T) {
	tests := []struct {
		in   string
		want BuildArg
		code string // "" when it parses
		msg  string // part of the message
	}{
		{"BASE=registry/base:1", BuildArg{"BASE", "registry/base:1"}, "", ""},
		{"EMPTY=", BuildArg{"EMPTY", ""}, "", ""},
		{"OPTS=a=b,c=d", BuildArg{"OPTS", "a=b,c=d"}, "", ""},
		{"_x9=line one\nline two", BuildArg{"_x9", "line one\nline two"}, "", ""},
		{"lower_case=ü", BuildArg{"lower_case", "ü"}, "", ""},
		{"novalue", BuildArg{}, EINVALID, `invalid build argument "novalue": use NAME=VALUE (NAME= for an empty value)`},
		{"1X=y", BuildArg{}, EINVALID, `invalid build argument name "1X"`},
		{"=y", BuildArg{}, EINVALID, `invalid build argument name ""`},
		{"A-B=y", BuildArg{}, EINVALID, `invalid build argument name "A-B"`},
		{"A B=y", BuildArg{}, EINVALID, `invalid build argument name "A B"`},
		{"A=x\x00y", BuildArg{}, EINVALID, "build argument A contains a NUL byte"},
		{"A=\xff", BuildArg{}, EINVALID, "build argument A is not UTF-8 text"},
		{strings.Repeat("N", MaxBuildArgNameBytes+1) + "=y", BuildArg{}, EINVALID, "use 1-128 letters"},
		{"BIG=" + strings.Repeat("v", MaxBuildArgValueBytes+1), BuildArg{}, ETOOLARGE, "a value may have at most 4096 bytes"},
	}
	for _, tt := range tests {
		got, err := ParseBuildArg(tt.in)
		if code := ErrorCode(err); code != tt.code || !strings.Contains(ErrorMessage(err), tt.msg) || got != tt.want {
			t.Errorf("ParseBuildArg(%q) = %+v, %v (code %q); want %+v, code %q, message with %q", tt.in, got, err, code, tt.want, tt.code, tt.msg)
		}
	}
	// The longest name and value are fine.
	if _, err := ParseBuildArg(strings.Repeat("N", MaxBuildArgNameBytes) + "=" + strings.Repeat("v", MaxBuildArgValueBytes)); err != nil {
		t.Errorf("ParseBuildArg at the limits: %v", err)
	}
}

func TestValidateBuildArgs(t *testing.T) {
	many := func(n, valueLen int) []BuildArg {
		var out []BuildArg
		for i := range n {
			out = append(out, BuildArg{fmt.Sprintf("A%02d", i), strings.Repeat("v", valueLen)})
		}
		return out
	}
	tests := []struct {
		name string
		args []BuildArg
		code string
		msg  string
	}{
		{"none", nil, "", ""},
		{"at the count limit", many(MaxBuildArgs, 10), "", ""},
		{"too many", many(MaxBuildArgs+1, 0), ETOOLARGE, "65 build arguments: a project may have at most 64"},
		{"too large in all", many(9, MaxBuildArgValueBytes), ETOOLARGE, "may take at most 32768 bytes"},
		{"twice", []BuildArg{{"A", "1"}, {"A", "2"}}, EINVALID, "build argument A is given twice"},
		{"bad name", []BuildArg{{"9", "1"}}, EINVALID, `invalid build argument name "9"`},
		{"bad value", []BuildArg{{"A", "\x00"}}, EINVALID, "NUL"},
	}
	for _, tt := range tests {
		err := ValidateBuildArgs(tt.args)
		if code := ErrorCode(err); code != tt.code || !strings.Contains(ErrorMessage(err), tt.msg) {
			t.Errorf("%s: ValidateBuildArgs = %v; want code %q with %q", tt.name, err, tt.code, tt.msg)
		}
	}
}

func TestChangeBuildArgs(t *testing.T) {
	cur := []BuildArg{{"BASE", "a"}, {"GREETING", "hi"}}
	tests := []struct {
		name  string
		set   []BuildArg
		unset []string
		want  []BuildArg
		code  string
		msg   string
	}{
		{"nothing", nil, nil, cur, "", ""},
		{"replace", []BuildArg{{"GREETING", "bye"}}, nil, []BuildArg{{"BASE", "a"}, {"GREETING", "bye"}}, "", ""},
		{"add, sorted", []BuildArg{{"Z", ""}, {"A", "1"}}, nil, []BuildArg{{"A", "1"}, {"BASE", "a"}, {"GREETING", "hi"}, {"Z", ""}}, "", ""},
		{"unset", nil, []string{"BASE"}, []BuildArg{{"GREETING", "hi"}}, "", ""},
		{"unset all", nil, []string{"GREETING", "BASE"}, nil, "", ""},
		{"set and unset", []BuildArg{{"NEW", "1"}}, []string{"BASE"}, []BuildArg{{"GREETING", "hi"}, {"NEW", "1"}}, "", ""},
		{"unset a missing one", nil, []string{"NOPE"}, nil, ENOTFOUND, `project web has no build argument "NOPE" to unset`},
		{"set and unset one name", []BuildArg{{"BASE", "b"}}, []string{"BASE"}, nil, EINVALID, "build argument BASE is both set and unset"},
		{"set twice", []BuildArg{{"X", "1"}, {"X", "2"}}, nil, nil, EINVALID, "build argument X is given twice"},
		{"bad name", []BuildArg{{"1X", "y"}}, nil, nil, EINVALID, `invalid build argument name "1X"`},
		{"bad value", []BuildArg{{"X", "\x00"}}, nil, nil, EINVALID, "NUL"},
	}
	for _, tt := range tests {
		got, err := ChangeBuildArgs("web", cur, tt.set, tt.unset)
		if code := ErrorCode(err); code != tt.code || !strings.Contains(ErrorMessage(err), tt.msg) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ChangeBuildArgs = %+v, %v; want %+v, code %q with %q", tt.name, got, err, tt.want, tt.code, tt.msg)
		}
	}
	if !reflect.DeepEqual(cur, []BuildArg{{"BASE", "a"}, {"GREETING", "hi"}}) {
		t.Errorf("ChangeBuildArgs changed its input: %+v", cur)
	}
	// The count limit holds for the result.
	var full []BuildArg
	for i := range MaxBuildArgs {
		full = append(full, BuildArg{fmt.Sprintf("A%02d", i), ""})
	}
	if _, err := ChangeBuildArgs("web", full, []BuildArg{{"ONE_MORE", ""}}, nil); ErrorCode(err) != ETOOLARGE {
		t.Errorf("ChangeBuildArgs past the limit = %v, want %s", err, ETOOLARGE)
	}
}

func TestBuildArgsMap(t *testing.T) {
	if m := BuildArgsMap(nil); m != nil {
		t.Errorf("BuildArgsMap(nil) = %v, want nil", m)
	}
	if m := BuildArgsMap([]BuildArg{{"A", "1"}, {"B", ""}}); !reflect.DeepEqual(m, map[string]string{"A": "1", "B": ""}) {
		t.Errorf("BuildArgsMap = %v", m)
	}
}
