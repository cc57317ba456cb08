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
    Migration(
        2,
        "queries, fingerprints and N+1 findings",
        """
        CREATE TABLE fingerprints (
            fingerprint_hash VARCHAR NOT NULL,
            fingerprint VARCHAR NOT NULL,
            statement_type VARCHAR,
            tables VARCHAR[],
            pretty VARCHAR
        );
        CREATE TABLE queries (
            run_id VARCHAR NOT NULL,
            file VARCHAR NOT NULL,
            nodeid VARCHAR,
            phase VARCHAR,
            qseq BIGINT,
            started TIMESTAMP,
            duration DOUBLE,
            sql VARCHAR,
            fingerprint_hash VARCHAR,
            vendor VARCHAR,
            alias VARCHAR,
            rows BIGINT,
            caller VARCHAR,
            stack_hash VARCHAR,
            orm VARCHAR,
            many BOOLEAN,
            params VARCHAR
        );
        CREATE TABLE n_plus_one (
            run_id VARCHAR NOT NULL,
            file VARCHAR NOT NULL,
            nodeid VARCHAR,
            phase VARCHAR,
            fingerprint_hash VARCHAR,
            fingerprint VARCHAR,
            table_name VARCHAR,
            count INTEGER,
            total_duration DOUBLE,
            caller VARCHAR,
            stack_hash VARCHAR,
            example_sql VARCHAR,
            orm VARCHAR,
            hint VARCHAR,
            first_qseq BIGINT
        );
        ALTER TABLE runs ADD COLUMN slow_query_ms DOUBLE;
        ALTER TABLE runs ADD COLUMN queries BIGINT;
        ALTER TABLE runs ADD COLUMN query_time DOUBLE;
        ALTER TABLE runs ADD COLUMN slow_queries INTEGER;
        ALTER TABLE runs ADD COLUMN n_plus_one INTEGER;
        ALTER TABLE test_files ADD COLUMN queries BIGINT;
        ALTER TABLE test_files ADD COLUMN query_time DOUBLE;
        ALTER TABLE test_files ADD COLUMN slow_queries INTEGER;
        ALTER TABLE test_files ADD COLUMN n_plus_one INTEGER;
        ALTER TABLE tests ADD COLUMN queries BIGINT;
        ALTER TABLE tests ADD COLUMN query_time DOUBLE;
        """,
    ),
    Migration(
        3,
        "coverage per run, per test file and per test",
        """
        CREATE TABLE coverage_files (
            run_id VARCHAR NOT NULL,
            source_file VARCHAR NOT NULL,
            statements INTEGER,
            covered INTEGER,
            missing VARCHAR,
            missing_lines INTEGER[],
            excluded INTEGER,
            percent DOUBLE,
            branches INTEGER,
            covered_branches INTEGER,
            partial_branches INTEGER,
            missing_branches VARCHAR
        );
        CREATE TABLE coverage_by_test_file (
            run_id VARCHAR NOT NULL,
            test_file VARCHAR NOT NULL,
            source_file VARCHAR NOT NULL,
            statements INTEGER,
            covered INTEGER,
            missing VARCHAR,
            missing_lines INTEGER[],
            excluded INTEGER,
            percent DOUBLE,
            branches INTEGER,
            covered_branches INTEGER,
            partial_branches INTEGER,
            missing_branches VARCHAR
        );
        CREATE TABLE coverage_contexts (
            run_id VARCHAR NOT NULL,
            test_file VARCHAR NOT NULL,
            source_file VARCHAR NOT NULL,
            line INTEGER NOT NULL,
            context VARCHAR NOT NULL
        );
        ALTER TABLE runs ADD COLUMN coverage_percent DOUBLE;
        ALTER TABLE runs ADD COLUMN coverage_statements INTEGER;
        ALTER TABLE runs ADD COLUMN coverage_covered INTEGER;
        ALTER TABLE runs ADD COLUMN coverage_branches INTEGER;
        ALTER TABLE runs ADD COLUMN coverage_covered_branches INTEGER;
        ALTER TABLE runs ADD COLUMN coverage_test_files INTEGER;
        ALTER TABLE runs ADD COLUMN coverage_note VARCHAR;
        ALTER TABLE test_files ADD COLUMN coverage_percent DOUBLE;
        ALTER TABLE test_files ADD COLUMN coverage_statements INTEGER;
        ALTER TABLE test_files ADD COLUMN coverage_covered INTEGER;
        ALTER TABLE test_files ADD COLUMN coverage_branches INTEGER;
        ALTER TABLE test_files ADD COLUMN coverage_covered_branches INTEGER;
        ALTER TABLE test_files ADD COLUMN coverage_test_files INTEGER;
        ALTER TABLE test_files ADD COLUMN coverage_note VARCHAR;
        """,
    ),
    Migration(
        4,
        "stored stacks; the frame that sent a statement apart from the frame to change",
        """
        CREATE TABLE stacks (
            stack_hash VARCHAR PRIMARY KEY,
            frames VARCHAR[] NOT NULL,
            first_run VARCHAR
        );
        ALTER TABLE queries ADD COLUMN sent_by VARCHAR;
        ALTER TABLE n_plus_one ADD COLUMN sent_by VARCHAR;
        """,
    ),
    Migration(
        5,
        "ORM lazy loads: the relation a statement loaded, its parent's result size, the fix",
        """
        ALTER TABLE queries ADD COLUMN relation VARCHAR;
        ALTER TABLE queries ADD COLUMN peers INTEGER;
        ALTER TABLE queries ADD COLUMN fix VARCHAR;
        ALTER TABLE n_plus_one ADD COLUMN relation VARCHAR;
        """,
    ),
    Migration(
        6,
        "unused eager loads: relations a test loaded eagerly and never read",
        """
        CREATE TABLE unused_eager_loads (
            run_id VARCHAR NOT NULL,
            file VARCHAR NOT NULL,
            nodeid VARCHAR,
            phase VARCHAR,
            relation VARCHAR,
            option VARCHAR,
            orm VARCHAR,
            count INTEGER,
            caller VARCHAR,
            sent_by VARCHAR,
            stack_hash VARCHAR,
            hint VARCHAR
        );
        """,
    ),
    Migration(
        7,
        "what each test file's process tree used: peak memory, CPU seconds, threads, processes",
        """
        ALTER TABLE test_files ADD COLUMN peak_rss BIGINT;
        ALTER TABLE test_files ADD COLUMN cpu_user DOUBLE;
        ALTER TABLE test_files ADD COLUMN cpu_system DOUBLE;
        ALTER TABLE test_files ADD COLUMN peak_threads INTEGER;
        ALTER TABLE test_files ADD COLUMN peak_processes INTEGER;
        """,
    ),
    Migration(
        8,
        "what each test cost its process: CPU seconds and resident-memory growth",
        """
        ALTER TABLE tests ADD COLUMN cpu DOUBLE;
        ALTER TABLE tests ADD COLUMN memory_growth BIGINT;
        """,
    ),
    Migration(
        9,
        "per-test query budgets: the max_queries of a test's devformance marker",
        """
        ALTER TABLE tests ADD COLUMN max_queries INTEGER;
        """,
    ),
    Migration(
        10,
        "the worker slot that ran each test file (the worker timeline)",
        """
        ALTER TABLE test_files ADD COLUMN worker INTEGER;
        """,
    ),
    Migration(
        11,
        "change-based selection: what each test file read, the files a run saw, carried results",
        """
        CREATE TABLE selection_reads (
            run_id VARCHAR NOT NULL,
            test_file VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            blocks VARCHAR[]
        );
        CREATE TABLE selection_digests (
            run_id VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            digest VARCHAR NOT NULL,
            blocks VARCHAR
        );
        ALTER TABLE runs ADD COLUMN selection VARCHAR;
        ALTER TABLE test_files ADD COLUMN carried_from VARCHAR;
        ALTER TABLE test_files ADD COLUMN selected_because VARCHAR;
        ALTER TABLE tests ADD COLUMN carried_from VARCHAR;
        """,
    ),
    Migration(
        12,
        "the Dask worker that ran each test file (its address; null for a local child)",
        """
        ALTER TABLE test_files ADD COLUMN worker_address VARCHAR;
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
