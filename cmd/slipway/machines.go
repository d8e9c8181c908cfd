package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
)

func newMachinesCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "machines",
		Short: "List the projects' builder machines and their state",
		Long: `List every project's builder machine: its state (asleep, starting, awake,
building, failed), the agent's pid while it runs, when it last woke and how
long waking took (launch to polling), and its volume.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ms, err := g.client().Machines(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				out := make([]machineJSON, len(ms))
				for i, m := range ms {
					out[i] = toMachineJSON(m)
				}
				return writeJSON(w, out)
			}
			if len(ms) == 0 {
				fmt.Fprintln(w, "No machines yet: a project's builder machine is created by its first build.")
				return nil
			}
			return printMachines(w, ms, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printMachines prints a table, one row per machine, with the error of a
// failed machine indented under its row.
func printMachines(w io.Writer, ms []*slipway.Machine, now time.Time) error {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tSTATE\tRUNS AS\tPID\tLAST WAKE\tWAKE MS\tVOLUME")
	for _, m := range ms {
		pid, wake, woke := "-", "-", "-"
		if m.PID > 0 {
			pid = strconv.Itoa(m.PID)
		}
		if m.LastWakeMs > 0 {
			wake = strconv.FormatInt(m.LastWakeMs, 10)
		}
		if m.LastWokeAt != nil {
			woke = age(*m.LastWokeAt, now)
		}
		volume := orDash(m.VolumeDir)
		if m.VolumeBytes > 0 {
			volume += " (" + bytesSize(m.VolumeBytes) + ")"
		}
		runsAs := orDash(m.Isolation)
		if m.User != "" {
			runsAs += " (" + m.User + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Project, m.State, runsAs, pid, woke, wake, volume)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rows := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
	fmt.Fprintln(w, rows[0])
	for i, m := range ms {
		fmt.Fprintln(w, rows[i+1])
		if m.Error != "" {
			for _, l := range strings.Split(strings.TrimRight(m.Error, "\n"), "\n") {
				if l != "" {
					fmt.Fprintf(w, "    %s\n", l)
				}
			}
		}
	}
	return nil
}

// machineJSON is a machine as `machines --json` prints it: every key is
// always present, null when unknown.
type machineJSON struct {
	Project     string     `json:"project"`
	Provider    string     `json:"provider"`
	Isolation   *string    `json:"isolation"`
	User        *string    `json:"user"`
	State       string     `json:"state"`
	PID         *int       `json:"pid"`
	VolumeDir   string     `json:"volumeDir"`
	VolumeBytes *int64     `json:"volumeBytes"`
	LastWokeAt  *time.Time `json:"lastWokeAt"`
	LastWakeMs  *int64     `json:"lastWakeMs"`
	LastSleptAt *time.Time `json:"lastSleptAt"`
	Error       *string    `json:"error"`
	UpdatedAt   time.Time  `json:"updatedAt"`
}

func toMachineJSON(m *slipway.Machine) machineJSON {
	out := machineJSON{
		Project: m.Project, Provider: m.Provider, State: string(m.State), VolumeDir: m.VolumeDir,
		LastWokeAt: m.LastWokeAt, LastSleptAt: m.LastSleptAt, UpdatedAt: m.UpdatedAt,
	}
	if m.Isolation != "" {
		out.Isolation = &m.Isolation
	}
	if m.User != "" {
		out.User = &m.User
	}
	if m.PID > 0 {
		out.PID = &m.PID
	}
	if m.VolumeBytes > 0 {
		out.VolumeBytes = &m.VolumeBytes
	}
	if m.LastWakeMs > 0 {
		out.LastWakeMs = &m.LastWakeMs
	}
	if m.Error != "" {
		out.Error = &m.Error
	}
	return out
}

// bytesSize formats a byte count in binary units: "512 B", "1.5 GiB".
func bytesSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
