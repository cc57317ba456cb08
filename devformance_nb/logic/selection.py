"""Change-based test selection: which test files a change can affect, and why.

Pure: the caller reads the last run's records and the working tree; this module decides.

Granularity. A Python source file is cut into *blocks*: one per function or method (by its
qualified name, its body's lines) and one ``<module>`` block for everything else (imports,
constants, class attributes, signatures, decorators). A block's digest is the digest of its
AST without line numbers, so a change that only moves code (a line added above it) or only
edits comments leaves it unchanged. A test file *executed* a block when coverage saw one of
the block's lines run in that file's child. Blocks are named, not numbered, so what a test
file executed stays valid when lines move, and a result carried forward over many runs
still compares against today's code.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: the block of a module's top-level code (everything outside function bodies)
MODULE = "<module>"
#: files whose change can affect every test file: pytest's configuration
CONFIG_FILES = frozenset({"pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini"})
#: pseudo paths for the interpreter and the installed distributions in the stored digests
PYTHON = "<python>"
PACKAGES = "<packages>"
#: how a reason names what is not a file
_SAID = {PYTHON: "the Python version", PACKAGES: "the installed packages"}
#: the test file statuses that need no re-run when nothing they depend on changed
SETTLED = frozenset({"passed", "empty"})


@dataclass(frozen=True)
class Block:
    """A function's body (``name`` is its qualified name) or a module's top level."""

    name: str
    start: int
    end: int
    digest: str


def blocks_of(source: str) -> list[Block] | None:
    """The blocks of Python ``source`` (None when it does not parse: compare whole files)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    blocks: list[Block] = []
    _walk(tree.body, "", blocks, {})
    # the function blocks are digested: empty their bodies in place (no copy) for the rest
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = []
    lines = source.count("\n") + 1
    blocks.append(Block(MODULE, 1, lines, _digest(ast.dump(tree, include_attributes=False))))
    return blocks


def _walk(body: Sequence[ast.stmt], prefix: str, out: list[Block], seen: dict[str, int]) -> None:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            # a name defined again (a property's setter, an overload, a def in each branch of
            # an if) gets the order it comes in: one name for two bodies would compare a
            # getter's digest with its setter's, and report a change that is not there
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            start = node.body[0].lineno
            end = node.end_lineno or start
            # the whole body, nested functions included: a nested change changes its parent
            text = ast.dump(ast.Module(body=node.body, type_ignores=[]), include_attributes=False)
            out.append(Block(name, start, end, _digest(text)))
            _walk(node.body, f"{name}.", out, seen)
        elif isinstance(node, ast.ClassDef):
            _walk(node.body, f"{prefix}{node.name}.", out, seen)
        else:
            # functions defined under if/try/with at any level still get their own block
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    _walk([child], prefix, out, seen)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def executed_blocks(blocks: Sequence[Block], lines: Iterable[int]) -> list[str]:
    """Names of the blocks holding at least one of the executed ``lines``.

    A line inside a function's body counts for that function (and its enclosing ones);
    any other executed line counts for the module block.
    """
    owners = _owners(tuple(blocks))
    module = (MODULE,)
    hit: set[str] = set()
    for line in lines:
        hit.update(owners.get(line, module))
    return sorted(hit)


@functools.lru_cache(maxsize=512)
def _owners(blocks: tuple[Block, ...]) -> dict[int, tuple[str, ...]]:
    """Each line inside a function -> the functions holding it. Made once per source: each
    test file's executed lines of it are looked up (a big module with hundreds of functions
    and a test file running thousands of its lines: 0.3 s a run, compared one by one)."""
    found: dict[int, list[str]] = {}
    for block in blocks:
        if block.name != MODULE:
            for line in range(block.start, block.end + 1):
                found.setdefault(line, []).append(block.name)
    return {line: tuple(names) for line, names in found.items()}


@dataclass(frozen=True)
class FileChange:
    """One changed path. ``blocks``: the changed blocks with their line range (old lines
    when known), or None when the whole file counts as changed."""

    path: str
    blocks: Mapping[str, tuple[int, int]] | None = None

    def describe(self, names: Iterable[str] | None = None) -> str:
        """``src/orders.py:40-52 changed`` (the blocks ``names``) or ``X changed``."""
        if self.blocks is None or names is None:
            return f"{_SAID.get(self.path, self.path)} changed"
        spans = sorted(self.blocks[n] for n in names if n in self.blocks)
        if not spans:
            return f"{self.path} changed"
        text = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
        return f"{self.path}:{text} changed"


def block_changes(
    path: str, old: Sequence[Block] | None, new: Sequence[Block] | None
) -> FileChange | None:
    """How ``path`` changed between two block lists (None: no block changed)."""
    if old is None or new is None:
        return FileChange(path)
    now = {b.name: b.digest for b in new}
    changed = {b.name: (b.start, b.end) for b in old if now.get(b.name) != b.digest}
    if not changed:
        return None
    return FileChange(path, changed)


@dataclass
class Baseline:
    """What the last recorded run knows about one test file."""

    run_id: str
    status: str
    #: source path -> the blocks this file executed there (None: executed, blocks unknown)
    executed: dict[str, list[str] | None] = field(default_factory=dict)
    #: non-Python files under the root it opened for reading
    opened: set[str] = field(default_factory=set)
    flaky: bool = False


@dataclass(frozen=True)
class Decision:
    """Whether test file ``file`` runs, and why (or which run's result it carries)."""

    file: str
    run: bool
    reason: str
    carried_from: str | None = None


def is_global(path: str) -> bool:
    """Whether a change of ``path`` can affect every test file."""
    name = path.rsplit("/", 1)[-1]
    return name == "conftest.py" or path in CONFIG_FILES or path in (PYTHON, PACKAGES)


def decide(
    files: Sequence[str],
    baselines: Mapping[str, Baseline],
    changes: Mapping[str, FileChange],
) -> list[Decision]:
    """Which of the test ``files`` run, given the last run's ``baselines`` and ``changes``.

    A file runs when it is new, did not pass last time (failed, error, crash, timeout,
    stopped) or was flaky, itself changed, executed a changed block of a source file,
    opened a changed data file, or when something every file depends on changed. Else it
    carries its last result.
    """
    everything = sorted(p for p in changes if is_global(p))
    out: list[Decision] = []
    for key in files:
        base = baselines.get(key)
        if base is None:
            out.append(Decision(key, True, "new: no recorded run of this file"))
        elif everything:
            out.append(
                Decision(key, True, f"{changes[everything[0]].describe()} (affects every file)")
            )
        elif base.status not in SETTLED:
            said = "timed out" if base.status == "timeout" else base.status
            out.append(Decision(key, True, f"{said} in run {base.run_id}"))
        elif base.flaky:
            out.append(Decision(key, True, "flaky (passed and failed on one commit)"))
        elif key in changes:
            out.append(Decision(key, True, f"{key} changed (the test file itself)"))
        else:
            why = _affected(base, changes)
            if why is not None:
                out.append(Decision(key, True, why))
            else:
                out.append(
                    Decision(
                        key,
                        False,
                        f"nothing it depends on changed; carried from run {base.run_id}",
                        base.run_id,
                    )
                )
    return out


def _affected(base: Baseline, changes: Mapping[str, FileChange]) -> str | None:
    for path, blocks in sorted(base.executed.items()):
        change = changes.get(path)
        if change is None:
            continue
        if change.blocks is None or blocks is None:
            return f"{change.describe()}, executed by this file in run {base.run_id}"
        hit = sorted(set(blocks) & set(change.blocks))
        if hit:
            return f"{change.describe(hit)}, executed by this file in run {base.run_id}"
    for path in sorted(base.opened):
        if path in changes:
            return f"{path} changed, opened by this file in run {base.run_id}"
    return None


def ranges(lines: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted line numbers as inclusive runs: ``[1, 2, 3, 7] -> [(1, 3), (7, 7)]``."""
    out: list[tuple[int, int]] = []
    for line in sorted(set(lines)):
        if out and line == out[-1][1] + 1:
            out[-1] = (out[-1][0], line)
        else:
            out.append((line, line))
    return out
