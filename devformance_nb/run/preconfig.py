"""pytest's initial configuration, made once in the fork server for its children (runtime layer).

Every ``pytest.main`` starts with ``get_config``: a plugin manager, a ``Config``, and pytest's
30-odd built-in plugins registered one by one (their hook implementations checked, their
options added to a fresh parser). Nothing in it depends on the test file, the project or the
environment (but ``PYTEST_DEBUG`` and the ``-p no:NAME`` arguments, which block plugins
before they register), and it runs no project code and no third-party plugin. So the fork
server makes one, and a child's ``pytest.main`` takes it over instead of making its own:
about 10 ms of a trivial file's child. The command line, the project's configuration files,
conftest files and installed plugins are all read afterwards, in the child, as usual.

The child uses it only when its first ``get_config`` call is the one a fresh process would
answer the same way (same ``-p no:`` arguments, no plugins object, same ``PYTEST_DEBUG``); a
second call (``pytester`` running pytest in-process) always makes a fresh one.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

#: the pytest arguments every child's command line starts with (``Job.command``): our
#: plugin, and no cache plugin (parallel children would race on ``.pytest_cache``)
CHILD_PYTEST_ARGS = ("-p", "devformance_nb.plugin", "-p", "no:cacheprovider")


def exclusions(args: Iterable[Any]) -> tuple[str, ...]:
    """The plugins ``args`` block with ``-p no:NAME`` (or ``-pno:NAME``), in order: what
    pytest's ``get_config`` acts on before it registers the built-in plugins."""
    found = []
    items = list(args)
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if not isinstance(item, str) or not item.startswith("-p"):
            continue
        if item == "-p":
            if index >= len(items):
                break
            value, index = items[index], index + 1
        else:
            value = item[2:]
        if isinstance(value, str) and value.strip().startswith("no:"):
            found.append(value.strip())
    return tuple(found)


class KeptConfig:
    """One ``Config`` made ahead in this process, for the first ``get_config`` of a child."""

    def __init__(
        self, make: Callable[..., Any], args: tuple[str, ...], kwargs: dict[str, Any]
    ) -> None:
        self.make = make
        self.exclusions = exclusions(args)
        self.kwargs = kwargs
        self.debug = os.environ.get("PYTEST_DEBUG")
        self.pid = os.getpid()
        self.config: Any = make(list(args), None, **kwargs)

    def __call__(self, args: Any = None, plugins: Any = None, **kwargs: Any) -> Any:
        """``_pytest.config.get_config``: the kept configuration if this call may have it."""
        config, self.config = self.config, None  # at most once, whatever the answer
        if config is None or not self._fits(args, plugins, kwargs):
            return self.make(args, plugins, **kwargs)
        config.invocation_params = type(config.invocation_params)(
            args=tuple(args or ()), plugins=plugins, dir=pathlib.Path.cwd()
        )
        return config

    def _fits(self, args: Any, plugins: Any, kwargs: dict[str, Any]) -> bool:
        return (
            os.getpid() != self.pid  # never the server's own use
            and not plugins
            and kwargs == self.kwargs
            and os.environ.get("PYTEST_DEBUG") == self.debug
            and exclusions(args or ()) == self.exclusions
        )


def install() -> KeptConfig | None:
    """Make a configuration now and have the next ``get_config`` of a forked child take it
    over; None (nothing changed) with a pytest whose ``get_config`` is not the expected one
    or if making it failed."""
    import _pytest.config as config_module

    make = getattr(config_module, "get_config", None)
    if make is None or isinstance(make, KeptConfig):
        return None
    try:
        kept = KeptConfig(make, CHILD_PYTEST_ARGS, main_keywords(config_module))
        if not hasattr(kept.config, "invocation_params"):
            return None
    except Exception:
        return None
    config_module.get_config = kept  # type: ignore[assignment]
    return kept


class _Asked(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.kwargs = kwargs


def main_keywords(config_module: Any) -> dict[str, Any]:
    """The keyword arguments ``pytest.main`` passes to ``get_config`` (pytest 8.4+: the
    program name for its usage line), found by asking it: a stand-in ``get_config`` records
    them and stops the call before anything else happens."""
    import pytest

    make = config_module.get_config

    def asked(args: Any = None, plugins: Any = None, **kwargs: Any) -> Any:
        raise _Asked(kwargs)

    config_module.get_config = asked
    try:
        pytest.main([])
    except _Asked as answer:
        return answer.kwargs
    finally:
        config_module.get_config = make
    raise RuntimeError("pytest.main did not call get_config")
