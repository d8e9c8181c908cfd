package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// BenchmarkAppendLogLinesInserts writes batches of 1000 lines as the archiver
// does: through AppendLogLines (multi-row INSERTs) and, side by side, one
// INSERT per line as before.
func BenchmarkAppendLogLinesInserts(b *testing.B) {
	for _, way := range []string{"multi-row", "one-by-one"} {
		b.Run(way, func(b *testing.B) {
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
				if way == "multi-row" {
					err = db.AppendLogLines(ctx, lines)
				} else {
					tx, _ := db.write.BeginTx(ctx, nil)
					err = appendLogLinesOneByOne(ctx, tx, lines)
					if err == nil {
						err = tx.Commit()
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}
