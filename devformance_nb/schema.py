"""The store's schema as named, versioned migrations.

Each migration runs once, in its own transaction, and is recorded in
``schema_migrations``. Never edit a released migration: add a new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, test files, tests and output",
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            started TIMESTAMP,
            finished TIMESTAMP,
            status VARCHAR NOT NULL,
            exit_code INTEGER,
            duration DOUBLE,
            root VARCHAR,
            run_dir VARCHAR,
            git_commit VARCHAR,
            git_branch VARCHAR,
            git_dirty BOOLEAN,
            host VARCHAR,
            pid INTEGER,
            python VARCHAR,
            pytest_version VARCHAR,
            devformance_version VARCHAR,
            workers INTEGER,
            executor VARCHAR,
            config VARCHAR,
            files INTEGER,
            tests INTEGER,
            passed INTEGER,
            failed INTEGER,
            errors INTEGER,
            skipped INTEGER,
            xfailed INTEGER,
            xpassed INTEGER
        );
        CREATE TABLE test_files (
            run_id VARCHAR NOT NULL,
            file VARCHAR NOT NULL,
            path VARCHAR,
            status VARCHAR NOT NULL,
            returncode INTEGER,
            exitstatus INTEGER,
            started TIMESTAMP,
            finished TIMESTAMP,
            duration DOUBLE,
            collected INTEGER,
            tests INTEGER,
            passed INTEGER,
            failed INTEGER,
            errors INTEGER,
            skipped INTEGER,
            xfailed INTEGER,
            xpassed INTEGER,
            message VARCHAR,
            log_path VARCHAR,
            output_lines INTEGER
        );
        CREATE TABLE tests (
            run_id VARCHAR NOT NULL,
            file VARCHAR NOT NULL,
            nodeid VARCHAR NOT NULL,
            outcome VARCHAR NOT NULL,
            duration DOUBLE,
            setup_duration DOUBLE,
            call_duration DOUBLE,
            teardown_duration DOUBLE,
            message VARCHAR
        );
        CREATE TABLE output_lines (
            run_id VARCHAR NOT NULL,
            file VARCHAR NOT NULL,
            line INTEGER NOT NULL,
            text VARCHAR
        );
        """,
    ),
)

#: the schema version this code writes and reads
SCHEMA_VERSION = MIGRATIONS[-1].version

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
)
"""
