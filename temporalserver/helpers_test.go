package temporalserver

import (
	tokenspb "go.temporal.io/server/api/token/v1"
	"go.temporal.io/server/common/tasktoken"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

func newTestWorker(c client.Client, queue string) worker.Worker {
	return worker.New(c, queue, worker.Options{})
}

// tokenFor makes up a task token naming workflow id.
func tokenFor(id string) ([]byte, error) {
	return tasktoken.NewSerializer().Serialize(&tokenspb.Task{WorkflowId: id, RunId: "00000000-0000-0000-0000-000000000001", ScheduledEventId: 5})
}
