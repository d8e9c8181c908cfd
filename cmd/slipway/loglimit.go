package main

import (
	"fmt"

	"github.com/slipway-ci/slipway"
)

// logLimitHelp explains the log limit flags.
const logLimitHelp = `--log-max-lines N and --log-max-bytes SIZE bound each deployment's build log
(default 100000 lines or 100 MiB): a build whose output passes either is
stopped and fails with "log limit exceeded", and its lines past the limit are
not kept. "default" restores a default.`

// checkLogLimitFlags rejects log limits the server would reject, as usage
// errors, before anything is sent.
func checkLogLimitFlags(lines, bytes *string) error {
	if lines != nil {
		if _, err := slipway.ParseLogMaxLines(*lines); err != nil {
			return usageError{fmt.Errorf("--log-max-lines: %s", slipway.ErrorMessage(err))}
		}
	}
	if bytes != nil {
		if _, err := slipway.ParseLogMaxBytes(*bytes); err != nil {
			return usageError{fmt.Errorf("--log-max-bytes: %s", slipway.ErrorMessage(err))}
		}
	}
	return nil
}
