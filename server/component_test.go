package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
)

// Components start in order and stop in reverse; when one fails to start,
// those started before it stop (in reverse) and the rest never start.
func TestStartAll(t *testing.T) {
	var log []string
	c := func(name string, fail bool) component {
		return component{
			name: name,
			start: func(context.Context) error {
				log = append(log, "start "+name)
				if fail {
					return errors.New(name + " failed")
				}
				return nil
			},
			stop: func(context.Context) error {
				log = append(log, "stop "+name)
				return nil
			},
		}
	}
	quiet := slog.New(slog.DiscardHandler)

	stopAll, err := startAll(t.Context(), []component{c("a", false), {name: "no stop", start: func(context.Context) error { return nil }}, c("b", false)}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	stopAll()
	if want := []string{"start a", "start b", "stop b", "stop a"}; !slices.Equal(log, want) {
		t.Errorf("start and stop = %q, want %q", log, want)
	}

	log = nil
	_, err = startAll(t.Context(), []component{c("a", false), c("b", false), c("c", true), c("d", false)}, quiet)
	if err == nil || err.Error() != "c failed" {
		t.Errorf("startAll with c failing = %v, want c's error", err)
	}
	if want := []string{"start a", "start b", "start c", "stop b", "stop a"}; !slices.Equal(log, want) {
		t.Errorf("start and stop with c failing = %q, want %q", log, want)
	}
}
