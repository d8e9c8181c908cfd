package agent

import "sync"

// logUsage keeps how much log text each deployment's activities wrote so
// far, so that the log limit's MaxBytes counts the whole log and not one
// activity's. An agent restart forgets it (the limit then counts from
// there). Safe for concurrent use; the zero value is ready.
type logUsage struct {
	mu    sync.Mutex
	bytes map[string]int64
}

// get returns what deployment's log took so far.
func (u *logUsage) get(deployment string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bytes[deployment]
}

// set records that deployment's log took n bytes so far; after its last
// activity (last) it is forgotten.
func (u *logUsage) set(deployment string, n int64, last bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if last {
		delete(u.bytes, deployment)
		return
	}
	if u.bytes == nil {
		u.bytes = map[string]int64{}
	}
	u.bytes[deployment] = n
}
