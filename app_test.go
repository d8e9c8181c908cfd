package slipway

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAppSettingsDefaultsAndString(t *testing.T) {
	e := AppSettings{}.Effective()
	if e.MemoryBytes != DefaultAppMemoryBytes || e.CPUs != 1 || e.HealthPath != "/" || e.IdleTimeout != 5*time.Minute || e.StopAfter != time.Hour || e.Port != 0 {
		t.Fatalf("defaults: %+v", e)
	}
	if got, want := (AppSettings{}).String(), "256 MiB, 1 CPUs, health /, freeze after 5m, stop after 1h, PORT from the image's EXPOSE"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	for d, want := range map[time.Duration]string{90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 2 * time.Hour: "2h", 45 * time.Second: "45s", 10 * time.Minute: "10m"} {
		if got := FormatAppDuration(d); got != want {
			t.Errorf("FormatAppDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestParseAppSettings(t *testing.T) {
	if n, err := ParseAppMemory("512MiB"); err != nil || n != 512<<20 {
		t.Errorf("ParseAppMemory(512MiB) = %d, %v", n, err)
	}
	if n, err := ParseAppCPUs("0.5"); err != nil || n != 0.5 {
		t.Errorf("ParseAppCPUs(0.5) = %v, %v", n, err)
	}
	if d, err := ParseAppDuration("idle timeout", "90s"); err != nil || d != 90*time.Second {
		t.Errorf("ParseAppDuration(90s) = %v, %v", d, err)
	}
	if p, err := ParseAppHealthPath("/healthz?deep=1"); err != nil || p != "/healthz?deep=1" {
		t.Errorf("ParseAppHealthPath = %q, %v", p, err)
	}
	if n, err := ParseAppPort("8000"); err != nil || n != 8000 {
		t.Errorf("ParseAppPort(8000) = %d, %v", n, err)
	}
	if n, err := ParseAppMemory("default"); err != nil || n != 0 {
		t.Errorf("ParseAppMemory(default) = %d, %v", n, err)
	}
	bad := map[string]error{}
	_, bad["memory 5MiB"] = ParseAppMemory("5MiB")
	_, bad["memory -1G"] = ParseAppMemory("-1G")
	_, bad["cpus 0"] = ParseAppCPUs("0")
	_, bad["cpus 100000"] = ParseAppCPUs("100000")
	_, bad["cpus NaN"] = ParseAppCPUs("NaN")
	_, bad["health healthz"] = ParseAppHealthPath("healthz")
	_, bad["idle 5"] = ParseAppDuration("idle timeout", "5")
	_, bad["idle 1.5s"] = ParseAppDuration("idle timeout", "1.5s")
	_, bad["idle 0s"] = ParseAppDuration("idle timeout", "0s")
	_, bad["port 0"] = ParseAppPort("0")
	_, bad["port 70000"] = ParseAppPort("70000")
	for what, err := range bad {
		if ErrorCode(err) != EINVALID {
			t.Errorf("%s: err = %v, want EINVALID", what, err)
		}
	}
}

func TestAppSettingsValidate(t *testing.T) {
	ok := []AppSettings{{}, {MemoryBytes: 6 << 20, CPUs: 0.1, HealthPath: "/up", IdleTimeout: time.Minute, StopAfter: time.Minute, Port: 1}, {IdleTimeout: 30 * time.Minute}}
	for _, a := range ok {
		if err := a.Validate(); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
	bad := map[string]AppSettings{
		"stop-after":    {IdleTimeout: 2 * time.Hour}, // default stop-after 1h is shorter
		"6MiB":          {MemoryBytes: 1 << 20},
		"CPUs":          {CPUs: -1},
		"health path":   {HealthPath: "up"},
		"port":          {Port: 65536},
		"idle timeout":  {IdleTimeout: time.Millisecond},
		"whole seconds": {IdleTimeout: 1500 * time.Millisecond},
	}
	for want, a := range bad {
		err := a.Validate()
		if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), want) {
			t.Errorf("%+v: err = %v, want EINVALID mentioning %q", a, err, want)
		}
	}
}

func TestValidateEnv(t *testing.T) {
	for _, n := range []string{"DATABASE_URL", "_x", "a1"} {
		if err := ValidateEnv(n, []byte("v")); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if err := ValidateEnv("EMPTY", nil); err != nil {
		t.Errorf("an empty value: %v", err)
	}
	for _, n := range []string{"", "1A", "A-B", "A=B", "PORT", strings.Repeat("A", MaxEnvNameBytes+1)} {
		if err := ValidateEnvName(n); ErrorCode(err) != EINVALID {
			t.Errorf("name %q: err = %v, want EINVALID", n, err)
		}
	}
	if err := ValidateEnvName("PORT"); !strings.Contains(ErrorMessage(err), "--port") {
		t.Errorf("PORT: %v, want a hint at --port", err)
	}
	for _, v := range []string{"a\x00b", "a\nb", "a\r", "\xff"} {
		if err := ValidateEnv("A", []byte(v)); ErrorCode(err) != EINVALID || strings.Contains(err.Error(), v) {
			t.Errorf("value %q: %v, want EINVALID not quoting it", v, err)
		}
	}
	var e *Error
	if err := ValidateEnv("A", make([]byte, MaxEnvValueBytes+1)); !errors.As(err, &e) || e.Code != ETOOLARGE {
		t.Errorf("too large: %v", err)
	}
}

func TestAppSettingsJSON(t *testing.T) {
	a := AppSettings{MemoryBytes: 64 << 20, CPUs: 0.5, HealthPath: "/up", IdleTimeout: 90 * time.Second, StopAfter: 2 * time.Hour, Port: 8000}
	b, err := json.Marshal(a)
	if want := `{"memoryBytes":67108864,"cpus":0.5,"healthPath":"/up","idleTimeoutSeconds":90,"stopAfterSeconds":7200,"port":8000}`; err != nil || string(b) != want {
		t.Fatalf("Marshal = %s, %v; want %s", b, err, want)
	}
	var back AppSettings
	if err := json.Unmarshal(b, &back); err != nil || back != a {
		t.Errorf("Unmarshal = %+v, %v; want %+v", back, err, a)
	}
	if err := json.Unmarshal([]byte(`{"port":null}`), &back); err != nil || back.Port != 0 {
		t.Errorf("a null port: %+v, %v", back, err)
	}
}
