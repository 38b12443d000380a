package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; ledger_schema.version records how many
// ran. The ledger keeps its own version row rather than PRAGMA user_version,
// which belongs to the state store that shares the file.
//
// Tables are STRICT so a value of the wrong type can never be stored, and
// times are Unix nanoseconds (UTC).
var migrations = []string{
	`-- One row per site that was ever charged: its first write in a charge
	-- takes the database's write lock; it also counts charges.
	CREATE TABLE ledger_sites (
		site_id TEXT PRIMARY KEY,
		charges INTEGER NOT NULL,
		last_charged INTEGER NOT NULL
	) STRICT;

	-- One row per charge; AUTOINCREMENT so ids are never reused and order
	-- charges as they were committed.
	CREATE TABLE ledger_charges (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		site_id TEXT NOT NULL,
		query_key TEXT NOT NULL,
		kind TEXT NOT NULL,
		actor TEXT NOT NULL,
		purpose TEXT NOT NULL,
		charged_at INTEGER NOT NULL
	) STRICT;
	CREATE INDEX ledger_charges_site ON ledger_charges (site_id, id);

	-- The budget lines of each charge; spent is always summed from here.
	-- site_id is repeated from the charge so the covering index below
	-- answers "spent on (site, key)" without a join.
	CREATE TABLE ledger_lines (
		charge_id INTEGER NOT NULL REFERENCES ledger_charges (id),
		pos INTEGER NOT NULL,
		site_id TEXT NOT NULL,
		budget_key TEXT NOT NULL,
		rho REAL NOT NULL CHECK (rho > 0),
		PRIMARY KEY (charge_id, pos),
		UNIQUE (charge_id, budget_key)
	) STRICT;
	CREATE INDEX ledger_lines_spent ON ledger_lines (site_id, budget_key, rho);

	-- Noisy answers already paid for; repeating the query returns them.
	CREATE TABLE ledger_cache (
		site_id TEXT NOT NULL,
		query_key TEXT NOT NULL,
		answer BLOB NOT NULL,
		charge_id INTEGER NOT NULL REFERENCES ledger_charges (id),
		created INTEGER NOT NULL,
		PRIMARY KEY (site_id, query_key)
	) STRICT;
	CREATE INDEX ledger_cache_created ON ledger_cache (created);

	-- Spent budget is never forgotten, whoever else writes to this file.
	CREATE TRIGGER ledger_charges_no_update BEFORE UPDATE ON ledger_charges
		BEGIN SELECT RAISE(ABORT, 'ledger_charges is append-only'); END;
	CREATE TRIGGER ledger_charges_no_delete BEFORE DELETE ON ledger_charges
		BEGIN SELECT RAISE(ABORT, 'ledger_charges is append-only'); END;
	CREATE TRIGGER ledger_lines_no_update BEFORE UPDATE ON ledger_lines
		BEGIN SELECT RAISE(ABORT, 'ledger_lines is append-only'); END;
	CREATE TRIGGER ledger_lines_no_delete BEFORE DELETE ON ledger_lines
		BEGIN SELECT RAISE(ABORT, 'ledger_lines is append-only'); END;`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Outside the transaction: on its own it is idempotent and atomic.
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS ledger_schema (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		version INTEGER NOT NULL
	) STRICT`); err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Write first to hold the write lock before reading the version, so
	// processes opening the ledger at once migrate one after the other.
	if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
		return err
	}
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT version FROM ledger_schema WHERE id = 1`).Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("ledger schema version %d is newer than this binary (%d); upgrade veil", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE ledger_schema SET version = ? WHERE id = 1`, len(migrations)); err != nil {
		return err
	}
	return tx.Commit()
}
