package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrNewerSchema means the database file has a schema version this build
// does not know: it was written by a newer Slipway. Open wraps it.
var ErrNewerSchema = errors.New("database schema is newer than this version of slipway supports")

// migrations is the schema's history: applying migrations[i] takes the
// schema from version i to version i+1. Only append; never edit an entry
// that has been released, since files in the wild have already applied it.
var migrations = []string{
	// 1: projects, deployments, log lines.
	`
CREATE TABLE projects (
	name           TEXT PRIMARY KEY,
	repo           TEXT NOT NULL,
	repo_key       TEXT NOT NULL, -- slipway.NormalizeRepoURL(repo)
	branch         TEXT NOT NULL DEFAULT '',
	dockerfile     TEXT NOT NULL DEFAULT '',
	context        TEXT NOT NULL DEFAULT '',
	webhook_secret TEXT NOT NULL DEFAULT '',
	created_at     TEXT NOT NULL
) STRICT;
CREATE INDEX projects_repo_key ON projects (repo_key);

CREATE TABLE deployments (
	id          TEXT PRIMARY KEY,
	project     TEXT NOT NULL REFERENCES projects (name),
	ref         TEXT NOT NULL DEFAULT '',
	commit_sha  TEXT NOT NULL DEFAULT '',
	"trigger"   TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL,
	image       TEXT NOT NULL DEFAULT '',
	digest      TEXT NOT NULL DEFAULT '',
	error       TEXT NOT NULL DEFAULT '',
	failed_step TEXT NOT NULL DEFAULT '',
	delivery_id TEXT NOT NULL DEFAULT '',
	timings     TEXT NOT NULL DEFAULT '', -- JSON object of phase -> milliseconds, or ''
	created_at  TEXT NOT NULL,
	started_at  TEXT,
	finished_at TEXT
) STRICT;
-- One deployment per webhook delivery; manual deployments have no delivery.
CREATE UNIQUE INDEX deployments_delivery_id ON deployments (delivery_id) WHERE delivery_id <> '';
CREATE INDEX deployments_project_created ON deployments (project, created_at);
CREATE INDEX deployments_unfinished ON deployments (created_at) WHERE status IN ('queued', 'building');

CREATE TABLE log_lines (
	deployment TEXT NOT NULL REFERENCES deployments (id),
	n          INTEGER NOT NULL,
	time       TEXT NOT NULL,
	stream     TEXT NOT NULL DEFAULT '',
	step       TEXT NOT NULL DEFAULT '',
	text       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (deployment, n)
) STRICT;
`,
	// 2: the Dockerfile steps of a deployment's build.
	`
ALTER TABLE deployments ADD COLUMN steps TEXT NOT NULL DEFAULT ''; -- JSON array of slipway.BuildStep, or ''
`,
	// 3: one builder machine record per project.
	`
CREATE TABLE machines (
	project       TEXT PRIMARY KEY REFERENCES projects (name) ON DELETE CASCADE,
	provider      TEXT NOT NULL DEFAULT '',
	state         TEXT NOT NULL,
	pid           INTEGER NOT NULL DEFAULT 0,
	volume_dir    TEXT NOT NULL DEFAULT '',
	volume_bytes  INTEGER NOT NULL DEFAULT 0,
	last_woke_at  TEXT,
	last_wake_ms  INTEGER NOT NULL DEFAULT 0,
	last_slept_at TEXT,
	error         TEXT NOT NULL DEFAULT '',
	updated_at    TEXT NOT NULL
) STRICT;
`,
	// 4: full-text search of log lines. The trigram tokenizer matches any
	// substring of three or more characters, ignoring case, which suits
	// build output (paths, flags, error codes) better than words do. The
	// index holds only the text. It is not kept by a trigger, which would
	// make FTS5 flush its index once per row (some twenty times slower),
	// but written in batches (see migration 6). Whoever deletes log lines
	// must remove them from log_lines_fts too (its 'delete' command).
	`
CREATE VIRTUAL TABLE log_lines_fts USING fts5(
	text,
	content = 'log_lines', content_rowid = 'rowid',
	tokenize = 'trigram'
);
INSERT INTO log_lines_fts (log_lines_fts) VALUES ('rebuild');
`,
	// 5: API tokens, by the SHA-256 of the token (the token itself is
	// never stored).
	`
CREATE TABLE api_tokens (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL DEFAULT '',
	hash         TEXT NOT NULL UNIQUE,
	created_at   TEXT NOT NULL,
	last_used_at TEXT
) STRICT;
`,
	// 6: the search index trails the lines: a background indexer adds the
	// lines with rowid > indexed_upto to log_lines_fts in batches, so that
	// storing a build's output never waits for the index (searches match
	// the lines not indexed yet directly).
	`
CREATE TABLE log_index (
	id           INTEGER PRIMARY KEY CHECK (id = 1),
	indexed_upto INTEGER NOT NULL
) STRICT;
INSERT INTO log_index (id, indexed_upto) SELECT 1, COALESCE(MAX(rowid), 0) FROM log_lines;
`,
	// 7: log retention per project (0: no limit), and when retention
	// deleted a deployment's log lines (NULL: never).
	`
ALTER TABLE projects ADD COLUMN log_retention_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN log_retention_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN log_pruned_at TEXT;
`,
	// 8: projects' build secrets, encrypted (AES-256-GCM with the key in
	// secrets.key beside the database file; see secrets.go).
	`
CREATE TABLE project_secrets (
	project    TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	sealed     BLOB NOT NULL, -- nonce || AES-GCM ciphertext, project and name as additional data
	updated_at TEXT NOT NULL,
	PRIMARY KEY (project, name)
) STRICT;
`,
	// 9: whom a machine's agent runs as (builder isolation mode and user).
	`
ALTER TABLE machines ADD COLUMN isolation TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN builder_user TEXT NOT NULL DEFAULT '';
`,
	// 10: a project's newest deployment of one commit (DeploymentOfCommit,
	// for the webhook window) without reading all of its deployments.
	`
CREATE INDEX deployments_project_commit ON deployments (project, commit_sha COLLATE NOCASE, created_at);
`,
	// 11: whether a deployment's whole log was in the store when it ended
	// (NULL: not known, as for deployments recorded before), since when,
	// and the number of its last line.
	`
ALTER TABLE deployments ADD COLUMN log_complete INTEGER CHECK (log_complete IN (0, 1));
ALTER TABLE deployments ADD COLUMN log_complete_at TEXT;
ALTER TABLE deployments ADD COLUMN log_lines INTEGER NOT NULL DEFAULT 0;
`,
	// 12: a project's build arguments (--build-arg NAME=VALUE): a JSON
	// array of slipway.BuildArg sorted by name, or '' for none.
	`
ALTER TABLE projects ADD COLUMN build_args TEXT NOT NULL DEFAULT '';
`,
	// 13: each project's webhook URL id (/webhooks/github/<hook_id>):
	// 16 random bytes in hex, unique; existing projects get one here.
	`
ALTER TABLE projects ADD COLUMN hook_id TEXT NOT NULL DEFAULT '';
UPDATE projects SET hook_id = lower(hex(randomblob(16))) WHERE hook_id = '';
CREATE UNIQUE INDEX projects_hook_id ON projects (hook_id);
`,
	// 14: registry tokens: an API token's scopes (slipway.TokenScope,
	// "push:base/* pull:demo"), '' for an API token.
	`
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
`,
	// 15: webhook secrets are stored sealed; the Go step seals those
	// stored in clear before.
	sealWebhookSecretsSQL,
	// 16: a project's per-deployment log limit (0: the default).
	`
ALTER TABLE projects ADD COLUMN log_max_lines INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN log_max_bytes INTEGER NOT NULL DEFAULT 0;
`,
	// 17: a project's app settings (0 or '': the default; see
	// slipway.AppSettings). Durations in milliseconds.
	`
ALTER TABLE projects ADD COLUMN app_memory_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN app_cpus REAL NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN app_health_path TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN app_idle_timeout_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN app_stop_after_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN app_port INTEGER NOT NULL DEFAULT 0;
`,
	// 18: projects' runtime environments, encrypted like build secrets
	// (see env.go).
	`
CREATE TABLE project_env (
	project    TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	sealed     BLOB NOT NULL, -- nonce || AES-GCM ciphertext, project and name as additional data
	updated_at TEXT NOT NULL,
	PRIMARY KEY (project, name)
) STRICT;
`,
	// 19: pull request previews: a deployment's pull request number (0:
	// the project's own), and the previews' records (see preview.go).
	`
ALTER TABLE deployments ADD COLUMN preview INTEGER NOT NULL DEFAULT 0;
CREATE TABLE previews (
	project         TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	number          INTEGER NOT NULL,
	head_ref        TEXT NOT NULL,
	head_branch     TEXT NOT NULL DEFAULT '',
	head_sha        TEXT NOT NULL,
	state           TEXT NOT NULL, -- slipway.PreviewState
	deployment      TEXT NOT NULL DEFAULT '',
	created_at      TEXT NOT NULL,
	updated_at      TEXT NOT NULL,
	last_request_at TEXT,
	PRIMARY KEY (project, number)
) STRICT;
`,
	// 20: a project's current release: the deployment its app serves.
	`
ALTER TABLE projects ADD COLUMN release_id TEXT NOT NULL DEFAULT '';
`,
	// 21: the projects' app output (see applog.go), numbered per project.
	`
CREATE TABLE app_log_lines (
	project TEXT NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	n       INTEGER NOT NULL,
	release TEXT NOT NULL,
	time    TEXT NOT NULL,
	stream  TEXT NOT NULL DEFAULT '',
	text    TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (project, n)
) STRICT;
`,
}

// goSteps are the migrations that need Go besides their SQL, by their SQL
// (not their number, so that a renumbering cannot attach a step to another
// migration). A step runs after its SQL, in the same transaction; key
// returns the secrets key, creating it if need be.
var goSteps = map[string]func(ctx context.Context, tx *sql.Tx, key func() ([]byte, error)) error{
	sealWebhookSecretsSQL: sealWebhookSecrets,
}

// migrate applies the migrations db has not applied yet, each in its own
// transaction together with its row in schema_migrations, so a failed
// migration leaves the schema as it was. Concurrent callers (two processes
// opening one file) are safe: each step re-reads the version under the
// write lock.
func migrate(ctx context.Context, db *sql.DB, migrations []string, key func() ([]byte, error)) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at TEXT NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	// Each step applies one migration, so more steps than migrations
	// means a step did not take effect.
	for range len(migrations) + 1 {
		done, err := migrateStep(ctx, db, migrations, key)
		if err != nil || done {
			return err
		}
	}
	return errors.New("migrate: schema version did not advance")
}

// migrateStep applies the next pending migration, or reports done.
func migrateStep(ctx context.Context, db *sql.DB, migrations []string, key func() ([]byte, error)) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()

	version, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	switch {
	case version > len(migrations):
		return false, fmt.Errorf("schema version %d, but this slipway knows versions up to %d (upgrade slipway or restore a backup): %w",
			version, len(migrations), ErrNewerSchema)
	case version == len(migrations):
		return true, nil
	}
	next := version + 1
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", next, err)
	}
	if step := goSteps[migrations[version]]; step != nil {
		if err := step(ctx, tx, key); err != nil {
			return false, fmt.Errorf("migrate to schema version %d: %w", next, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		next, formatTime(time.Now())); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", next, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", next, err)
	}
	return false, nil
}

// schemaVersion returns the highest applied migration, 0 for a new file.
func schemaVersion(ctx context.Context, q rowQueryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
