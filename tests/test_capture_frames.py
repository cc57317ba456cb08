"""Capture internals: which frames are the project's, and adapters switched on by imports."""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import pytest

import devformance_nb
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.plugin import TestContext
from devformance_nb.plugin.capture.adapters import ADAPTERS, Adapter, load_adapter
from devformance_nb.plugin.capture.frames import FrameIndex
from devformance_nb.plugin.capture.recorder import Recorder
from devformance_nb.plugin.capture.session import Capture

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.quick
def test_project_files_are_relative_to_the_root(tmp_path: Path) -> None:
    index = FrameIndex(str(tmp_path))
    assert index.relpath(str(tmp_path / "app" / "models.py")) == "app/models.py"
    assert index.relpath(str(tmp_path / "tests" / "test_x.py")) == "tests/test_x.py"


@pytest.mark.quick
@pytest.mark.parametrize(
    "filename",
    [
        sqlite3.__file__,  # stdlib
        pytest.__file__,  # site-packages
        devformance_nb.__file__,  # this package, even inside the root
        "<string>",
        "<frozen importlib._bootstrap>",
        "",
        "/elsewhere/outside/the/root.py",
    ],
)
def test_frames_that_are_not_the_projects(filename: str) -> None:
    assert FrameIndex(str(REPO)).relpath(filename) is None


@pytest.mark.quick
def test_installed_code_inside_the_root_is_not_the_projects(tmp_path: Path) -> None:
    index = FrameIndex(str(tmp_path))
    assert index.relpath(str(tmp_path / ".venv/lib/python3/site-packages/lib/x.py")) is None
    assert index.relpath(str(tmp_path / "dist-packages" / "x.py")) is None


@pytest.mark.quick
def test_a_symlinked_root_still_matches(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "app").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    index = FrameIndex(str(link))
    assert index.relpath(str(real / "app" / "a.py")) == "app/a.py"
    assert index.relpath(str(link / "app" / "a.py")) == "app/a.py"


APP = """
import sys

def load():
    return sys._getframe()

class Repo:
    def find(self):
        return load()

def view():
    return Repo().find()
"""


def compiled(path: Path, source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), str(path), "exec"), namespace)
    return namespace


@pytest.mark.quick
def test_locate_gives_first_project_frame_and_hash_of_all(tmp_path: Path) -> None:
    app = compiled(tmp_path / "app" / "views.py", APP)
    index = FrameIndex(str(tmp_path))
    frame: FrameType = app["view"]()
    caller, sent_by, stack_hash = index.locate(frame)
    assert caller == sent_by == "app/views.py:5 load"
    assert index.locate(frame) == (caller, sent_by, stack_hash)  # cached, same answer
    direct: FrameType = app["load"]()
    other_caller, _, other_hash = index.locate(direct)
    assert other_caller == caller and other_hash != stack_hash


@pytest.mark.quick
def test_a_floor_cuts_the_walk_short_with_the_same_answer(tmp_path: Path) -> None:
    # project code (app/) calls a runner outside the root (the floor, like pluggy's hook
    # caller), which calls project code again: the project frames below the floor still count
    runner = compiled(
        tmp_path.parent / "lib" / "runner.py",
        "import sys\ndef run(fn):\n    return sys._getframe(), fn()\n",
    )
    app = compiled(tmp_path / "app" / "views.py", APP)
    outer = compiled(tmp_path / "app" / "outer.py", "def outer(run, view):\n    return run(view)\n")
    floor, frame = outer["outer"](runner["run"], app["view"])
    index = FrameIndex(str(tmp_path))
    whole = index.locate(frame)
    assert whole[0] == "app/views.py:5 load"
    fresh = FrameIndex(str(tmp_path))
    assert fresh.locate(frame, floor) == whole  # first walk below the floor
    assert fresh.locate(frame, floor) == whole  # then reused
    without_outer = FrameIndex(str(tmp_path)).locate(app["view"]())
    assert without_outer.caller == whole.caller and without_outer.stack_hash != whole.stack_hash
    # a floor that is not on the stack (another thread's, a finished phase's) changes nothing
    assert fresh.locate(app["view"](), floor) == without_outer


@pytest.mark.quick
def test_new_stacks_described_after_others_answer_as_if_each_were_first(tmp_path: Path) -> None:
    # what lies below a floor is described once and reused for the next new stacks: each
    # stack's site and told frames must equal a fresh index's, in either order
    runner = compiled(
        tmp_path.parent / "lib" / "runner.py",
        "import sys\ndef run(fn, other):\n    return sys._getframe(), fn(), other()\n",
    )
    app = compiled(tmp_path / "app" / "views.py", APP)
    outer = compiled(
        tmp_path / "app" / "outer.py",
        "def outer(run, view, load):\n    return run(view, load)\n\n"
        "def other(run, view, load):\n    return run(view, load)\n",
    )
    floor, first, second = outer["outer"](runner["run"], app["view"], app["load"])
    other_floor, third, _ = outer["other"](runner["run"], app["view"], app["load"])
    floors = {id(first): floor, id(second): floor, id(third): other_floor}

    def described(*frames: FrameType) -> list[tuple[Any, ...]]:
        index = FrameIndex(str(tmp_path))
        told: list[Any] = []
        index.on_stack = lambda digest, stack: told.append(stack)
        return [(index.locate(frame, floors[id(frame)]), told[-1]) for frame in frames]

    alone = [*described(first), *described(second), *described(third)]
    assert len({site.stack_hash for site, _ in alone}) == 3
    assert alone[0][1][0] == ("app/outer.py", 2, "outer")  # below the floor, still there
    assert alone[2][1][0] == ("app/outer.py", 5, "other")
    assert described(first, second, third) == alone
    assert described(second, first, third) == [alone[1], alone[0], alone[2]]


def test_stack_hash_is_stable_across_processes(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP) + "\n", encoding="utf-8")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import app;"
        "from devformance_nb.plugin.capture.frames import FrameIndex;"
        "print(FrameIndex(sys.argv[1]).locate(app.view()))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1 and "app.py:5 load" in outputs.pop()


SENDERS = """
import threading

import greenlet


def send(probe, sql):
    return probe()


def per_row(probe, n):
    found = []
    for _ in range(n):
        found.append(send(probe, "SELECT x FROM t WHERE id = ?"))
    return found


def two_on_one_line(probe):
    return (send(probe, "SELECT x FROM t"), send(probe, "SELECT x FROM t"))


def in_greenlet(probe):
    return greenlet.greenlet(lambda: probe()).switch()


def greenlets_on_two_lines(probe):
    first = in_greenlet(probe)
    second = in_greenlet(probe)
    return first, second


class Lazy:
    def __init__(self, probe, seen):
        self.probe, self.seen = probe, seen

    def __len__(self):
        self.seen.append(self.probe())
        return 0


def lengths_in_a_loop(probe, n):
    seen = []
    for _ in range(n):
        len(Lazy(probe, seen))
    return seen


def requests_on_two_lines(pool, probe):
    first = pool.submit(probe).result()
    second = pool.submit(probe).result()
    return first, second


def threads_in_a_loop(probe, n):
    box = []
    threads = [threading.Thread(target=lambda: box.append(probe())) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return box


def lookup(probe, key):
    return probe()


def per_item(probe, n):
    return [lookup(probe, key) for key in range(n)]


def once(probe):
    return lookup(probe, 1)


def two_waits_on_one_line(first, second):
    return first.wait() and second.wait()
"""


def senders(tmp_path: Path) -> tuple[dict[str, Any], FrameIndex, Any]:
    """The SENDERS project, an index over it, and a probe that walks from its caller with
    this test's frame as the floor (as the plugin's phase hook is)."""
    app = compiled(tmp_path / "app" / "senders.py", SENDERS)
    index = FrameIndex(str(tmp_path))
    floor = sys._getframe(1)
    thread = threading.get_ident()

    def probe() -> Any:
        return index.walk(sys._getframe(1), floor, thread)[0]

    return app, index, probe


@pytest.mark.quick
def test_a_loop_shares_one_stack_and_two_calls_on_one_line_do_not(tmp_path: Path) -> None:
    app, _, probe = senders(tmp_path)
    looped = app["per_row"](probe, 3)
    assert len(set(looped)) == 1
    first, second = app["two_on_one_line"](probe)
    assert first.caller == second.caller  # the same line...
    assert first.stack_hash != second.stack_hash  # ...but two calls: two stacks


BODY = """
def test_body(probe, sink, marker):
    first = probe()
    for _ in range(3):
        sink.append(probe())
    return first, probe()
"""


@pytest.mark.quick
def test_walks_that_stop_at_the_test_body_give_the_whole_walks_answers(tmp_path: Path) -> None:
    app = compiled(tmp_path / "tests" / "test_body.py", BODY)
    body_code = app["test_body"].__code__
    index, whole = FrameIndex(str(tmp_path)), FrameIndex(str(tmp_path))
    floor, thread = sys._getframe(), threading.get_ident()

    def probe() -> tuple[Any, Any]:
        frame = sys._getframe(1)
        site, _, body = index.walk(frame, floor, thread, body_code)
        assert body is not None and body.f_code is body_code
        return site, whole.walk(frame, floor, thread)[0]

    class Marker:
        pass

    marker = Marker()
    alive = weakref.ref(marker)
    sink: list[tuple[Any, Any]] = []
    first, last = app["test_body"](probe, sink, marker)
    for shortcut, walked in [first, last, *sink]:
        assert shortcut == walked
    assert len({site for site, _ in sink}) == 1  # a loop: one stack
    assert len({first[0], sink[0][0], last[0]}) == 3  # three lines: three stacks
    del marker
    index.release()  # the phase ended: the body's frame (and its locals) are let go
    gc.collect()
    assert alive() is None


@pytest.mark.quick
def test_a_loop_keeps_one_stack_when_the_interpreter_specializes_its_call(
    tmp_path: Path,
) -> None:
    # Python 3.11 runs a specialized len() in its PRECALL: the offset the frame reports moves
    app, _, probe = senders(tmp_path)
    assert len({site.stack_hash for site in app["lengths_in_a_loop"](probe, 200)}) == 1


@pytest.mark.quick
def test_a_helper_handed_the_statement_is_sent_by_not_the_line_to_change(
    tmp_path: Path,
) -> None:
    app, _, probe = senders(tmp_path)
    site = app["per_row"](probe, 1)[0]
    assert site.sent_by == "app/senders.py:8 send"  # got the SQL text from its caller
    assert site.caller == "app/senders.py:14 per_row"  # the loop


@pytest.mark.quick
def test_a_lookup_repeated_by_a_loop_names_the_loop(tmp_path: Path) -> None:
    app, _, probe = senders(tmp_path)
    line = SENDERS.splitlines().index("    return [lookup(probe, key) for key in range(n)]") + 1
    (site,) = set(app["per_item"](probe, 2))
    lookup = SENDERS.splitlines().index("def lookup(probe, key):") + 2
    assert site.sent_by == f"app/senders.py:{lookup} lookup"  # handed a key, not a statement
    comprehension = ".<locals>.<listcomp>" if sys.version_info < (3, 12) else ""
    assert site.caller == f"app/senders.py:{line} per_item{comprehension}"  # the loop
    # with no loop on the stack, the innermost frame that was not handed the statement
    assert app["once"](probe).caller == f"app/senders.py:{lookup} lookup"


@pytest.mark.quick
def test_statements_in_greenlets_keep_the_line_that_started_them(tmp_path: Path) -> None:
    app, _, probe = senders(tmp_path)
    first, second = app["greenlets_on_two_lines"](probe)
    assert first.caller == second.caller == "app/senders.py:23 in_greenlet.<locals>.<lambda>"
    assert first.stack_hash != second.stack_hash


@pytest.mark.quick
def test_a_test_waiting_on_a_worker_is_at_the_line_that_asked(tmp_path: Path) -> None:
    app, _, probe = senders(tmp_path)
    with ThreadPoolExecutor(1) as pool:
        first, second = app["requests_on_two_lines"](pool, probe)
    assert first.stack_hash != second.stack_hash


def blocked_at(thread: int, code: Any) -> int | None:
    """Where ``thread``'s frame running ``code`` stands while the thread is blocked in a
    condition's wait (a library waiting for work it handed over), else None."""
    top = sys._current_frames().get(thread)
    if top is None or top.f_code is not threading.Condition.wait.__code__:
        return None
    frame: FrameType | None = top
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    return None if frame is None else frame.f_lasti


def poll(condition: Any) -> Any:
    """``condition()``'s first true answer, polled for up to a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.001)
    raise AssertionError("the test thread never got there")


@pytest.mark.quick
def test_statements_of_one_request_share_a_stack_while_the_test_thread_moves_on(
    tmp_path: Path,
) -> None:
    # a test client's request line is first inside submit(), then inside result(): the same
    # line at two instructions, and the worker's statements must not depend on the race
    app, _, probe = senders(tmp_path)
    test_thread, code = threading.get_ident(), app["two_waits_on_one_line"].__code__
    first, second = threading.Event(), threading.Event()
    sites: list[Any] = []

    def worker() -> None:
        was = poll(lambda: blocked_at(test_thread, code))
        sites.append(app["send"](probe, "SELECT 1"))
        first.set()
        poll(lambda: blocked_at(test_thread, code) not in (None, was))
        sites.append(app["send"](probe, "SELECT 1"))
        second.set()

    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(worker)
        assert app["two_waits_on_one_line"](first, second)
        done.result()
    assert sites[0] == sites[1] and sites[0].stack_hash


@pytest.mark.quick
def test_threads_started_in_a_loop_share_one_stack(tmp_path: Path) -> None:
    # the test thread is starting or joining threads, or between two: no line of it counts
    app, _, probe = senders(tmp_path)
    for _ in range(5):
        assert len(set(app["threads_in_a_loop"](probe, 4))) == 1


@pytest.mark.quick
def test_each_new_stack_is_told_once_with_its_frames_outermost_first(tmp_path: Path) -> None:
    app, index, probe = senders(tmp_path)
    told: list[tuple[str, Any]] = []
    index.on_stack = lambda digest, frames: told.append((digest, frames))
    site = app["per_row"](probe, 3)[0]
    app["per_row"](probe, 2)
    assert [digest for digest, _ in told] == [site.stack_hash]
    frames = told[0][1]
    assert frames[0] == ("app/senders.py", 14, "per_row")
    assert frames[-1] == ("app/senders.py", 8, "send")


@pytest.mark.quick
def test_no_project_frame_gives_empty_caller(tmp_path: Path) -> None:
    assert FrameIndex(str(tmp_path / "nowhere")).locate(sys._getframe()) == ("", "", "")


class FakeAdapter(Adapter):
    library = "devf_fakelib"
    calls: ClassVar[list[str]] = []

    def install(self) -> None:
        FakeAdapter.calls.append("install")

    def uninstall(self) -> None:
        FakeAdapter.calls.append("uninstall")


class FailingAdapter(FakeAdapter):
    def install(self) -> None:
        raise RuntimeError("cannot hook")


def make_capture(tmp_path: Path, adapters: dict[str, str]) -> Capture:
    writer = EventWriter(tmp_path / "events.jsonl", "r", "f")
    return Capture(Recorder(writer, TestContext(), ChildOptions(root=str(tmp_path))), adapters)


@pytest.fixture
def fakelib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "devf_fakelib.py").write_text("VALUE = 42\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "devf_fakelib", raising=False)
    FakeAdapter.calls.clear()
    return "devf_fakelib"


@pytest.mark.quick
def test_adapter_installs_when_its_library_is_imported(tmp_path: Path, fakelib: str) -> None:
    capture = make_capture(tmp_path, {fakelib: f"{__name__}:FakeAdapter"})
    capture.start()
    assert FakeAdapter.calls == [] and capture.libraries == []
    module = __import__(fakelib)
    assert module.VALUE == 42
    assert FakeAdapter.calls == ["install"] and capture.libraries == [fakelib]
    assert "exec_module" not in vars(module.__loader__)  # the wrapper is gone
    capture.stop()
    assert FakeAdapter.calls == ["install", "uninstall"]
    assert not any(type(f).__name__ == "ImportWatcher" for f in sys.meta_path)


@pytest.mark.quick
def test_an_already_imported_library_is_hooked_at_once(tmp_path: Path, fakelib: str) -> None:
    __import__(fakelib)
    capture = make_capture(tmp_path, {fakelib: f"{__name__}:FakeAdapter"})
    capture.start()
    assert capture.libraries == [fakelib]
    capture.stop()


@pytest.mark.quick
def test_a_failing_adapter_never_breaks_the_import(tmp_path: Path, fakelib: str) -> None:
    capture = make_capture(tmp_path, {fakelib: f"{__name__}:FailingAdapter"})
    capture.start()
    assert __import__(fakelib).VALUE == 42
    assert capture.libraries == []
    assert capture.problems == [f"install {__name__}:FailingAdapter: RuntimeError: cannot hook"]
    capture.stop()


@pytest.mark.quick
def test_stop_before_the_import_leaves_nothing_behind(tmp_path: Path, fakelib: str) -> None:
    before = list(sys.meta_path)
    capture = make_capture(tmp_path, {fakelib: f"{__name__}:FakeAdapter"})
    capture.start()
    capture.stop()
    __import__(fakelib)
    assert FakeAdapter.calls == [] and sys.meta_path == before


@pytest.mark.quick
def test_libraries_that_are_not_installed_are_skipped(tmp_path: Path) -> None:
    before = list(sys.meta_path)
    capture = make_capture(tmp_path, {"devf_no_such_lib": f"{__name__}:FakeAdapter"})
    capture.start()
    assert sys.meta_path == before and capture.libraries == []
    capture.stop()


@pytest.mark.quick
def test_registry_names_real_adapters() -> None:
    for library, path in ADAPTERS.items():
        assert load_adapter(path).library == library
    with pytest.raises(TypeError):
        load_adapter("devformance_nb.plugin.capture.recorder:Recorder")


LAZY = """
import sys
from devformance_nb.plugin.capture import start_capture
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.core.contract import ChildOptions
from devformance_nb.plugin import TestContext

capture = start_capture(EventWriter(sys.argv[1], "r", "f"), TestContext(), ChildOptions(root="."))
print("before", "sqlalchemy" in sys.modules, capture.libraries)
import sqlalchemy
print("after", capture.libraries)
capture.stop()
"""


def test_sqlalchemy_is_hooked_only_once_the_project_imports_it(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    out = subprocess.run(
        [sys.executable, "-c", LAZY, str(tmp_path / "events.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "before False []"  # sqlite3 is not imported by the capture either
    assert out[1] == "after ['sqlalchemy']"
