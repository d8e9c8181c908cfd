package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/slipway-ci/slipway"
)

const machineColumns = `project, provider, state, pid, volume_dir, volume_bytes, last_woke_at, last_wake_ms,
	last_slept_at, error, updated_at, isolation, builder_user`

// UpsertMachine stores m as its project's machine record, replacing the
// previous one. A zero UpdatedAt is set to now; m's UpdatedAt is set to the
// UTC time stored. An unknown project is ENOTFOUND, an unknown state
// EINVALID.
func (db *DB) UpsertMachine(ctx context.Context, m *slipway.Machine) error {
	if m == nil {
		return slipway.Errorf(slipway.EINVALID, "no machine given")
	}
	if !m.State.Valid() {
		return slipway.Errorf(slipway.EINVALID, "invalid machine state %q", m.State)
	}
	updated := m.UpdatedAt
	if updated.IsZero() {
		updated = db.now()
	}
	updated = updated.UTC()
	_, err := db.write.ExecContext(ctx, `INSERT INTO machines (`+machineColumns+`)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (project) DO UPDATE SET
		provider = excluded.provider, state = excluded.state, pid = excluded.pid,
		volume_dir = excluded.volume_dir, volume_bytes = excluded.volume_bytes,
		last_woke_at = excluded.last_woke_at, last_wake_ms = excluded.last_wake_ms,
		last_slept_at = excluded.last_slept_at, error = excluded.error, updated_at = excluded.updated_at,
		isolation = excluded.isolation, builder_user = excluded.builder_user`,
		m.Project, m.Provider, string(m.State), m.PID, m.VolumeDir, m.VolumeBytes, nullTime(m.LastWokeAt), m.LastWakeMs,
		nullTime(m.LastSleptAt), m.Error, formatTime(updated), m.Isolation, m.User)
	if isConstraint(err, codeConstraintForeignKey) {
		return slipway.Errorf(slipway.ENOTFOUND, "project %q not found", m.Project)
	} else if err != nil {
		return fmt.Errorf("store machine of %q: %w", m.Project, err)
	}
	m.UpdatedAt = updated
	return nil
}

// Machine returns a project's machine record, or ENOTFOUND when it has
// none.
func (db *DB) Machine(ctx context.Context, project string) (*slipway.Machine, error) {
	m, err := scanMachine(db.read.QueryRowContext(ctx, `SELECT `+machineColumns+` FROM machines WHERE project = ?`, project))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no machine for project %q", project)
	} else if err != nil {
		return nil, fmt.Errorf("get machine of %q: %w", project, err)
	}
	return m, nil
}

// Machines lists every machine record, ordered by project.
func (db *DB) Machines(ctx context.Context) ([]*slipway.Machine, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+machineColumns+` FROM machines ORDER BY project`)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	defer rows.Close()
	ms := []*slipway.Machine{}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, fmt.Errorf("list machines: %w", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	return ms, nil
}

func scanMachine(s scanner) (*slipway.Machine, error) {
	var (
		m              slipway.Machine
		state, updated string
		woke, slept    sql.NullString
	)
	if err := s.Scan(&m.Project, &m.Provider, &state, &m.PID, &m.VolumeDir, &m.VolumeBytes, &woke, &m.LastWakeMs,
		&slept, &m.Error, &updated, &m.Isolation, &m.User); err != nil {
		return nil, err
	}
	m.State = slipway.MachineState(state)
	var err error
	if m.LastWokeAt, err = parseNullTime(woke); err != nil {
		return nil, fmt.Errorf("machine of %q: %w", m.Project, err)
	}
	if m.LastSleptAt, err = parseNullTime(slept); err != nil {
		return nil, fmt.Errorf("machine of %q: %w", m.Project, err)
	}
	if m.UpdatedAt, err = parseTime(updated); err != nil {
		return nil, fmt.Errorf("machine of %q: %w", m.Project, err)
	}
	return &m, nil
}
