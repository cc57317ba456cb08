"""One error hierarchy; every message says what went wrong and how to fix it."""

from __future__ import annotations


class DevformanceError(Exception):
    """Base of all errors raised by devformance_nb on purpose."""

    #: exit code the CLI uses for this error (pytest's numbering: 4 is a usage error)
    exit_code = 4


class ConfigError(DevformanceError):
    """The ``[tool.devformance]`` table or an argument is invalid."""


class PathNotFoundError(DevformanceError):
    """A path given to run or discover does not exist."""


class NoTestsFoundError(DevformanceError):
    """Discovery found no test files."""

    exit_code = 5


class DiscoveryError(DevformanceError):
    """pytest could not even list the project's test files."""


class MissingExtraError(DevformanceError):
    """A feature needs packages of an optional extra that are not installed."""


class ClusterUnreachableError(DevformanceError):
    """The Dask scheduler given to run on could not be reached (nothing ran)."""


class StoreError(DevformanceError):
    """Something is wrong with the DuckDB store."""

    exit_code = 3


class StoreLockedError(StoreError):
    """Another process holds the write lock on the database file."""


class StoreCorruptError(StoreError):
    """The database file is damaged or is not a DuckDB database."""


class StoreVersionError(StoreError):
    """The database was written by a newer devformance_nb."""


class RunNotFoundError(StoreError):
    """No run matches the given selector."""

    exit_code = 4
