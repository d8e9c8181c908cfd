package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// BenchmarkAppendLogLinesInserts writes batches of 1000 lines as the archiver
// does: through AppendLogLines (one prepared INSERT per line) and, side by
// side, in multi-row INSERTs of 64, 256 and 1000 rows, as it did for a
// while (slower: each such statement needs a statement journal).
func BenchmarkAppendLogLinesInserts(b *testing.B) {
	for _, rows := range []int{1, 64, 256, 1000} {
		b.Run(fmt.Sprintf("rows-per-insert-%d", rows), func(b *testing.B) {
			db, err := Open(b.TempDir() + "/slipway.db")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := b.Context()
			if err := db.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
				b.Fatal(err)
			}
			d, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: "app"})
			if err != nil {
				b.Fatal(err)
			}
			lines := make([]slipway.LogLine, 1000)
			n := int64(0)
			for b.Loop() {
				for i := range lines {
					n++
					lines[i] = slipway.LogLine{Deployment: d.ID, N: n, Time: time.Now(), Stream: "stdout", Step: "build", Text: fmt.Sprintf("STEP 3/9: RUN npm ci line %d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", n)}
				}
				if rows == 1 {
					err = db.AppendLogLines(ctx, lines)
				} else {
					err = appendLogLinesMultiRow(ctx, db, lines, rows)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// appendLogLinesMultiRow is AppendLogLines with INSERTs of rows lines each.
func appendLogLinesMultiRow(ctx context.Context, db *DB, lines []slipway.LogLine, rows int) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for rest := lines; len(rest) > 0; {
		chunk := rest[:min(len(rest), rows)]
		rest = rest[len(chunk):]
		args := make([]any, 0, 6*len(chunk))
		for _, l := range chunk {
			args = append(args, l.Deployment, l.N, formatTime(l.Time), l.Stream, l.Step, l.Text)
		}
		if _, err := tx.ExecContext(ctx, insertLogLines(len(chunk)), args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}
