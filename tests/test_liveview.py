"""LiveRunView driven by synthetic events: widget state after on_event, tick and close."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from conftest import MakeProject

from devformance_nb.core import events as ev
from devformance_nb.logic.detection import NPlusOneFinding
from devformance_nb.logic.eager import unused_eager_load
from devformance_nb.logic.slow import SlowQuery
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.state import RunState
from devformance_nb.ui import cards, liveview, text
from devformance_nb.ui.liveview import LiveRunView
from devformance_nb.ui.pane import TAIL_CHARS, TAIL_LINES, Budget, FilePane

UNLIMITED = (1e9, 1e12)


@pytest.fixture(autouse=True)
def redraw_every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ticks in a test come faster than the launcher's: let each one redraw."""
    monkeypatch.setattr(liveview, "MIN_REDRAW", 0.0)


class Driver:
    """Feeds events to a view the way the launcher loop does (state first, then observers)."""

    def __init__(self, view: LiveRunView, run_id: str = "run-1"):
        self.view = view
        self.dispatcher = Dispatcher(RunState(run_id=run_id), [view])
        self.state = self.dispatcher.state
        self.lines: dict[str, int] = {}

    def send(self, event: ev.Event) -> None:
        self.dispatcher.deliver(event)
        assert self.dispatcher.errors == []

    def start(self, keys: list[str], run_dir: str = "") -> None:
        meta = {"run_dir": run_dir} if run_dir else {}
        self.send(
            ev.RunStarted(
                run_id=self.state.run_id, root="/p", files=keys, workers=2, executor="spawn",
                meta=meta, t=time.time(),
            )
        )  # fmt: skip

    def file_started(self, key: str, collected: int | None = None) -> None:
        self.send(ev.FileStarted(file=key, path=f"/p/{key}", pid=1, command=[], t=time.time()))
        if collected is not None:
            self.send(ev.Collected(file=key, count=collected, nodeids=[]))

    def test(self, key: str, name: str, category: str = "passed") -> None:
        nodeid = f"{key}::{name}"
        for phase, cat in (("setup", "passed"), ("call", category), ("teardown", "passed")):
            self.send(
                ev.TestPhase(file=key, nodeid=nodeid, phase=phase, outcome=cat, duration=0.01,
                             category=cat if phase == "call" else "")
            )  # fmt: skip

    def output(self, key: str, *lines: str) -> None:
        for text_ in lines:
            line = self.lines[key] = self.lines.get(key, 0) + 1
            self.send(ev.Output(file=key, line=line, text=text_))

    def finish(self, key: str, status: str) -> None:
        self.send(
            ev.FileFinished(file=key, status=status, returncode=0, duration=0.5, t=time.time())
        )

    def tick(self) -> None:
        self.dispatcher.tick()
        assert self.dispatcher.errors == []

    def close(self, status: str = "passed") -> None:
        self.send(ev.RunDone(status=status, duration=1.0, t=time.time()))
        self.dispatcher.close()
        assert self.dispatcher.errors == []


@pytest.fixture
def view(tmp_path: Path) -> LiveRunView:
    v = LiveRunView(root=tmp_path)
    v.budget = Budget(*UNLIMITED)
    return v


@pytest.fixture
def drive(view: LiveRunView) -> Driver:
    return Driver(view)


def pane_of(view: LiveRunView, key: str) -> FilePane:
    pane = view.pane_for(key)
    assert pane is not None, f"{key} has no pane"
    return pane


def pane_text(view: LiveRunView, key: str) -> str:
    outputs = pane_of(view, key).pane.outputs
    return "".join(o["text"] for o in outputs)


def title_of(view: LiveRunView, key: str) -> str:
    return str(view.accordion.titles[view.accordion.children.index(pane_of(view, key).box)])


@pytest.mark.quick
def test_items_titles_progress_and_summary_follow_the_run(view: LiveRunView, drive: Driver) -> None:
    drive.start(["tests/test_a.py", "tests/test_b.py"])
    assert len(view.accordion.children) == 2
    assert view.accordion.titles[0].startswith("○ pending")
    drive.file_started("tests/test_a.py", collected=4)
    drive.test("tests/test_a.py", "t1")
    drive.output("tests/test_a.py", "tests/test_a.py::t1 PASSED")
    drive.tick()
    a = pane_of(view, "tests/test_a.py")
    assert title_of(view, "tests/test_a.py").startswith("▶ running  ·  tests/test_a.py")
    assert (a.progress.value, a.progress.max, a.progress.description) == (1, 4, "1/4 tests")
    assert a.progress.bar_style == "info"
    assert "tests/test_a.py::t1 PASSED" in pane_text(view, "tests/test_a.py")
    assert view.accordion.selected_index == 0, "the running file opens by itself"
    for name in ("t2", "t3"):
        drive.test("tests/test_a.py", name)
    drive.test("tests/test_a.py", "t4", "failed")
    drive.finish("tests/test_a.py", "failed")
    drive.tick()
    assert re.fullmatch(
        r"✘ failed  ·  tests/test_a\.py  ·  \d\.\d\d s", title_of(view, "tests/test_a.py")
    )
    assert (a.progress.value, a.progress.max, a.progress.bar_style) == (4, 4, "danger")
    summary = cards.summarize(drive.state)
    assert (summary.tests, summary.passed, summary.failed, summary.finished) == (4, 3, 1, 1)
    assert ">4<" in view.summary.value and ">3<" in view.summary.value
    assert "running" in view.status.value and drive.state.run_id in view.status.value


@pytest.mark.quick
@pytest.mark.parametrize(
    "status", ["passed", "failed", "error", "timeout", "crashed", "stopped", "empty"]
)
def test_every_final_status_has_its_icon(view: LiveRunView, drive: Driver, status: str) -> None:
    drive.start(["t.py", "never.py"])
    drive.file_started("t.py", collected=0)
    drive.finish("t.py", status)
    drive.close("failed")
    assert title_of(view, "t.py").startswith(f"{text.ICONS[status]} {text.label(status)}")
    assert title_of(view, "never.py").startswith("– not run"), "pending at the end: not_run"
    assert all(ord(ch) < 0x2800 for ch in "".join(text.ICONS.values())), "no emoji"


@pytest.mark.quick
def test_sql_findings_and_coverage_slot_in_when_present(view: LiveRunView, drive: Driver) -> None:
    drive.start(["t.py"])
    drive.file_started("t.py", collected=1)
    drive.tick()
    assert "N+1</b>: none" in pane_of(view, "t.py").side.value
    fs = drive.state.files["t.py"]
    fs.n_plus_one.append(
        NPlusOneFinding(
            file="t.py", nodeid="t.py::t1", phase="call", fingerprint="SELECT ?", table="authors",
            fingerprint_hash="h", count=12, total_duration=0.03, stack_hash="s", orm="sqlalchemy",
            caller="app/views.py:40 list_books", hint="use selectinload(Book.author)",
            example_sql="SELECT * FROM authors WHERE id = 1", first_qseq=1,
        )
    )  # fmt: skip
    fs.slow.append(
        SlowQuery(
            file="t.py", nodeid="t.py::t1", phase="call", qseq=2, sql="SELECT pg_sleep(1)",
            fingerprint="SELECT pg_sleep(?)", duration=0.25, caller="app/x.py:3 f", table="",
        )
    )  # fmt: skip
    fs.slow.append(cast(Any, SimpleNamespace()))  # a half-filled finding must not break the view
    fs.coverage = 87.4
    drive.test("t.py", "t1")
    drive.tick()
    title = title_of(view, "t.py")
    assert "N+1 ×1" in title and "slow ×2" in title and "cov 87%" in title
    side = pane_of(view, "t.py").side.value
    assert "authors" in side and "×12" in side and "selectinload" in side
    assert "250 ms" in side and "pg_sleep" in side and "87.4%" in side
    summary = cards.summarize(drive.state)
    assert (summary.slow, summary.n_plus_one, summary.coverage) == (2, 1, "87%")
    assert "Unused eager loads" not in side  # a kind most files never have: listed when found


def test_unused_eager_loads_get_a_badge_and_a_list(view: LiveRunView, drive: Driver) -> None:
    drive.start(["t.py"])
    drive.file_started("t.py", collected=1)
    event = ev.EagerUnused(
        file="t.py", nodeid="t.py::t1", phase="call", relation="Author.books",
        option="selectinload(Author.books)", orm="sqlalchemy", caller="app/q.py:7 names",
    )  # fmt: skip
    drive.state.files["t.py"].unused_eager.append(unused_eager_load(event))
    drive.test("t.py", "t1")
    drive.tick()
    assert "unused eager ×1" in title_of(view, "t.py")
    side = pane_of(view, "t.py").side.value
    assert "Unused eager loads</b> (1)" in side and "Author.books" in side
    assert "app/q.py:7 names" in side and "drop the option" in side


def test_forty_files_and_100k_lines_keep_every_pane_capped(
    view: LiveRunView, drive: Driver
) -> None:
    keys = [f"tests/test_{i:02d}.py" for i in range(40)]
    drive.start(keys)
    for key in keys:
        drive.file_started(key, collected=10)
    for n in range(100_000):
        key = keys[n % 40]
        drive.send(ev.Output(file=key, line=n // 40 + 1, text=f"{key} line {n // 40} " + "x" * 60))
        if n % 5_000 == 0:
            drive.tick()
    drive.tick()
    for key in keys:
        shown = pane_text(view, key)
        assert len(shown) <= TAIL_CHARS + 200
        assert f"{key} line 2499 " in shown, "the newest line is shown"
        assert "earlier lines" in shown and f"{key} line 0 " not in shown
        assert len(view._buffers[key].tail) <= TAIL_LINES
    assert len(view.accordion.children) == 40


@pytest.mark.quick
def test_open_item_follows_the_run_until_the_user_chooses(view: LiveRunView, drive: Driver) -> None:
    keys = ["a.py", "b.py", "c.py", "d.py"]
    drive.start(keys)
    drive.tick()
    assert view.accordion.selected_index is None, "nothing runs yet: nothing opens"
    drive.file_started("b.py", collected=2)
    drive.tick()
    assert view.accordion.selected_index == 1, "first running file"
    drive.file_started("c.py", collected=2)
    drive.test("c.py", "t", "failed")
    drive.tick()
    assert view.accordion.selected_index == 2, "a failure wins over a running file"
    drive.file_started("a.py", collected=1)
    drive.test("a.py", "t", "failed")
    drive.tick()
    assert view.accordion.selected_index == 2, "the failure that opened stays open"
    view.accordion.selected_index = None  # the user closes it (as a frontend update would)
    drive.file_started("d.py", collected=1)
    drive.test("d.py", "t", "failed")
    drive.tick()
    assert view.accordion.selected_index is None, "the user's close sticks"
    view.accordion.selected_index = 3
    drive.finish("d.py", "failed")
    drive.tick()
    drive.close("failed")
    assert view.accordion.selected_index == 3, "the user's open sticks"


@pytest.mark.quick
def test_finished_open_file_hands_over_to_a_running_one(view: LiveRunView, drive: Driver) -> None:
    drive.start(["a.py", "b.py"])
    drive.file_started("a.py", collected=1)
    drive.tick()
    drive.test("a.py", "t")
    drive.finish("a.py", "passed")
    drive.file_started("b.py", collected=1)
    drive.tick()
    assert view.accordion.selected_index == 1


@pytest.mark.quick
def test_all_files_failing_to_collect(view: LiveRunView, drive: Driver) -> None:
    keys = ["tests/test_a.py", "tests/test_b.py", "tests/test_c.py"]
    drive.start(keys)
    for key in keys:
        drive.file_started(key)
        drive.send(ev.CollectError(file=key, nodeid=key, message=f"SyntaxError in {key}"))
        drive.send(ev.FileDone(file=key, exitstatus=2, counts={"error": 1}, duration=0.1))
        drive.finish(key, "error")
    drive.close("failed")
    for key in keys:
        assert title_of(view, key).startswith("⚠ error")
        pane = pane_of(view, key)
        assert "Collection errors" in pane.side.value and f"SyntaxError in {key}" in pane.side.value
        assert pane.progress.bar_style == "danger"
    assert "All 3 files failed to collect" in view.summary.value
    assert cards.summarize(drive.state).errors == 3
    assert "failed" in view.status.value


@pytest.mark.quick
def test_events_of_another_run_are_ignored(view: LiveRunView, drive: Driver) -> None:
    drive.start(["a.py"])
    other = Driver(view, run_id="run-2")
    other.state.apply(ev.FileStarted(file="a.py", path="/p/a.py", pid=1, command=[]))
    view.on_event(ev.Output(file="a.py", line=1, text="stray"), other.state)
    view.tick(other.state)
    drive.tick()
    assert "stray" not in pane_text(view, "a.py")
    assert title_of(view, "a.py").startswith("○ pending")


@pytest.mark.quick
def test_budget_spreads_redraws_without_losing_any(view: LiveRunView, drive: Driver) -> None:
    keys = [f"f{i}.py" for i in range(20)]
    drive.start(keys)
    for key in keys:
        drive.file_started(key, collected=5)
        drive.output(key, f"{key} says hi")
    view.budget = Budget(messages_per_s=20, bytes_per_s=1e9)
    before = view.messages
    drive.tick()
    first = view.messages - before
    assert first <= 20, "one tick stays within the budget (plus one overdraw)"
    assert sum(f"{k} says hi" in pane_text(view, k) for k in keys) < 20, "some panes wait"
    drive.close()
    assert all(f"{k} says hi" in pane_text(view, k) for k in keys), "close draws them all"


@pytest.mark.quick
def test_files_announced_off_the_main_thread_get_no_widgets(view: LiveRunView) -> None:
    drive = Driver(view)
    thread = threading.Thread(target=drive.start, args=(["a.py", "b.py"],))
    thread.start()
    thread.join()
    drive.tick()
    assert len(view.accordion.children) == 0
    assert "2 files have no pane" in view.summary.value
    assert "a.py" in view.table.table.value and "b.py" in view.table.table.value


@pytest.mark.quick
def test_expect_builds_items_before_the_run(view: LiveRunView, drive: Driver) -> None:
    view.expect(["a.py", "b.py"])
    assert view.accordion.titles == ("○ pending  ·  a.py", "○ pending  ·  b.py")
    drive.start(["b.py", "a.py"])  # the scheduler's order does not reorder the items
    assert view._order == ["a.py", "b.py"]


@pytest.mark.quick
def test_full_log_button_shows_the_log_file(
    view: LiveRunView, drive: Driver, tmp_path: Path
) -> None:
    drive.start(["tests/test_a.py"], run_dir=str(tmp_path))
    pane = pane_of(view, "tests/test_a.py")
    assert pane.log_path is not None and pane.log_path.parent == tmp_path
    pane.log_button.click()
    assert "no log yet" in pane.log_view.outputs[0]["text"]
    pane.log_button.click()
    assert pane.log_view.layout.display == "none"
    pane.log_path.write_text("line one\nline two\n")
    pane.log_button.click()
    assert pane.log_view.outputs[0]["text"] == "line one\nline two\n"
    assert pane.log_view.layout.display == "block"
    drive.tick()
    assert str(pane.log_path) in pane.log_link.value


@pytest.mark.quick
def test_tail_text_caps_and_colours() -> None:
    lines = [f"line {i}" for i in range(1000)]
    shown = text.tail_text(lines, 5000, 100)
    assert len(shown) < 200 and shown.endswith("line 999\n") and "4,9" in shown
    assert text.colourize("t.py::x FAILED") == "\x1b[31mt.py::x FAILED\x1b[0m"
    assert text.colourize("t.py::x PASSED").startswith("\x1b[32m")
    assert text.colourize("\x1b[32mcoloured\x1b[0m FAILED").startswith("\x1b[32m")
    huge = text.tail_text(["\x1b[31m" + "y" * 500], 1, 100)
    assert len(huge) <= 102 and "\x1b" not in huge


SUITE = {
    "tests/test_fast.py": "def test_ok():\n    assert True\n",
    # waits forever: only a stop ends it
    "tests/test_slow.py": "import threading\ndef test_slow():\n    threading.Event().wait()\n",
    "tests/test_other.py": "def test_ok():\n    assert True\n",
}


def wait_for(condition: Callable[[], Any], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_view_runs_filters_refuses_a_second_run_and_stops_twice(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project(SUITE)
    view = LiveRunView(root=root, workers=2, db=str(tmp_path / "db.duckdb"), filter="slow fast")
    run = view.start()
    assert view._order == ["tests/test_fast.py", "tests/test_slow.py"], "the filter applies"
    assert view.run_button.disabled and not view.stop_button.disabled
    wait_for(lambda: run.state.files.get("tests/test_slow.py") is not None
             and run.state.files["tests/test_slow.py"].status == "running")  # fmt: skip
    with pytest.raises(RuntimeError, match="already going"):
        view.start()
    view._on_run_click()
    assert view._notice and view.run is run, "the Run button refuses too"
    view.stop()
    view.stop()
    run.wait(120)
    assert run.status == "stopped"
    assert title_of(view, "tests/test_slow.py").startswith("■ stopped")
    assert not view.run_button.disabled and view.stop_button.disabled
    view.stop()  # after the end: still harmless
    view.filter.value = "other"
    second = view.start()
    second.wait(120)
    assert view._order == ["tests/test_other.py"] and len(view.accordion.children) == 1
    assert second.id != run.id and title_of(view, "tests/test_other.py").startswith("✔ passed")


def test_a_filter_matching_nothing_says_so(make_project: MakeProject) -> None:
    root = make_project(SUITE)
    view = LiveRunView(root=root, filter="nomatch")
    view._on_run_click()
    assert "no test file matches" in view.status.value
    assert view.run is None and not view.run_button.disabled


def widget_count() -> int:
    from ipywidgets.widgets.widget import _instances

    return len(_instances)


@pytest.mark.quick
def test_a_large_run_costs_what_a_small_one_does(view: LiveRunView, drive: Driver) -> None:
    # widget models follow what is shown, never the number of files
    before = widget_count()
    view.expect([f"tests/test_{i:04d}.py" for i in range(100)])
    made_for_100 = widget_count() - before
    other = LiveRunView(root=view.root)
    before = widget_count()
    other.expect([f"tests/test_{i:04d}.py" for i in range(2_000)])
    assert widget_count() - before == made_for_100
    assert len(other.accordion.children) == 0, "nothing worth a pane yet: the table shows all"
    assert "files 1–50 of 2,000" in other.table.where.value
    assert other.table.table.value.count("<tr>") == 51  # the header and one page


@pytest.mark.quick
def test_failing_and_opened_files_get_panes_in_a_large_run(
    view: LiveRunView, drive: Driver
) -> None:
    keys = [f"tests/test_{i:04d}.py" for i in range(1_000)]
    view.expect(keys)
    drive.start(keys)
    for key in keys:
        drive.file_started(key, collected=1)
        failing = key in ("tests/test_0100.py", "tests/test_0500.py", "tests/test_0999.py")
        drive.test(key, "t", "failed" if failing else "passed")
        drive.finish(key, "failed" if failing else "passed")
    drive.tick()
    failing_keys = ["tests/test_0100.py", "tests/test_0500.py", "tests/test_0999.py"]
    assert [pane_of(view, k).key for k in failing_keys] == failing_keys
    assert len(view.accordion.children) == 3
    assert view.accordion.selected_index == 0, "the first failure opens by itself"
    # problems first: the three failures head the table's first page
    rows = re.findall(r"<code>(tests/test_\d+\.py)</code>", view.table.table.value)
    assert rows[:3] == failing_keys and len(rows) == 50
    # open a passing file from the table: it gets a pane, opened; closing it hides it
    view.open_file("tests/test_0007.py")
    drive.tick()
    opened = pane_of(view, "tests/test_0007.py")
    assert view.accordion.children[view.accordion.selected_index] is opened.box
    assert len(view.accordion.children) == 4, "panes in the run's order: it comes first"
    assert title_of(view, "tests/test_0007.py").startswith("✔ passed")
    pane_of(view, "tests/test_0007.py").close_button.click()
    drive.tick()
    assert view.pane_for("tests/test_0007.py") is None and len(view.accordion.children) == 3
    drive.close("failed")
    assert "files 1–50 of 1,000" in view.table.where.value


@pytest.mark.quick
def test_the_table_sorts_filters_and_pages(view: LiveRunView, drive: Driver) -> None:
    keys = [f"tests/api/test_{i:03d}.py" for i in range(60)] + ["tests/web/test_home.py"]
    view.expect(keys)
    drive.start(keys)
    drive.file_started("tests/web/test_home.py", collected=2)
    drive.finish("tests/web/test_home.py", "passed")
    drive.close()
    assert "files 1–50 of 61" in view.table.where.value
    view.table.next.click()
    assert "files 51–61 of 61" in view.table.where.value and view.table.next.disabled
    view.filter.value = "web"
    assert "files 1–1 of 1 matching (61 in the run)" in view.table.where.value
    assert "tests/web/test_home.py" in view.table.table.value
    view.filter.value = "tests/api/test_00?.py"
    assert "of 10 matching" in view.table.where.value
    view.filter.value = ""
    view.table.sort.value = "file"
    rows = re.findall(r"<code>(tests/[^<]+)</code>", view.table.table.value)
    assert rows == sorted(keys)[:50]


@pytest.mark.quick
def test_a_pane_the_user_opens_stays_when_its_file_ends(view: LiveRunView, drive: Driver) -> None:
    keys = [f"tests/test_{i:03d}.py" for i in range(100)]
    view.expect(keys)
    drive.start(keys)
    for key in ("tests/test_050.py", "tests/test_060.py"):
        drive.file_started(key, collected=1)
        drive.state.files[key].started = time.time() - 5  # running for a while
    drive.tick()
    assert view._shown == ["tests/test_050.py", "tests/test_060.py"], "long runs get panes"
    assert view.accordion.selected_index == 0, "the first running file opens by itself"
    view.accordion.selected_index = 1  # the user opens the other (as a frontend update would)
    drive.test("tests/test_060.py", "t")
    drive.finish("tests/test_060.py", "passed")
    drive.tick()
    opened = pane_of(view, "tests/test_060.py")  # it stays: the user is reading it
    assert view.accordion.children[view.accordion.selected_index] is opened.box


@pytest.mark.quick
def test_a_crash_shows_what_happened_and_the_crashing_frames(
    view: LiveRunView, drive: Driver
) -> None:
    drive.start(["t.py"])
    drive.file_started("t.py", collected=1)
    frames = [f'  File "/lib/f{n}.py", line {n} in outer_{n}' for n in range(50)]
    message = "\n".join(
        [
            "killed by signal 11 (SIGSEGV) while t.py::test_dies was running",
            "Fatal Python error: Segmentation fault",
            "",
            "Current thread 0x1 (most recent call first):",
            '  File "/p/t.py", line 12 in test_dies',
            *frames,
        ]
    )
    drive.send(ev.FileCrashed(file="t.py", reason="crashed", returncode=-11, signal=11,
                              message=message))  # fmt: skip
    drive.finish("t.py", "crashed")
    drive.close("failed")
    head = pane_of(view, "t.py").head.value
    assert "while t.py::test_dies was running" in head
    assert "File &quot;/p/t.py&quot;, line 12 in test_dies" in head  # HTML-escaped
    assert "outer_40" not in head, "the top of the dump, not all of it"


@pytest.mark.quick
def test_cpu_and_memory_show_while_a_file_runs_and_its_peak_after(
    view: LiveRunView, drive: Driver
) -> None:
    drive.start(["a.py", "b.py"])
    for key, rss, cpu in (("a.py", 310_000_000, 99.0), ("b.py", 90_000_000, 12.0)):
        drive.file_started(key, collected=1)
        drive.send(ev.Resources(file=key, cpu_percent=cpu, rss=rss, threads=2, processes=1,
                                cpu_user=1.0, cpu_system=0.1))  # fmt: skip
    drive.tick()
    assert "CPU 99%, 310 MB" in title_of(view, "a.py")
    cards = re.sub(r"<[^>]+>", " ", view.summary.value)
    assert re.search(r"running\s+2\b", cards) and re.search(r"CPU\s+111%", cards)
    assert re.search(r"memory\s+400 MB", cards), cards
    drive.finish("a.py", "passed")
    drive.tick()
    assert "peak 310 MB" in title_of(view, "a.py") and "CPU" not in title_of(view, "a.py")


SAMPLED = """
import time


def test_holds_and_works():
    data = bytearray(100 * 1000 * 1000)
    for i in range(0, len(data), 4096):
        data[i] = 1  # touched: resident
    end = time.process_time() + 1.5
    while time.process_time() < end:  # working while it holds it: sampled meanwhile
        pass
"""


def test_a_real_runs_pane_draws_the_files_memory_and_cpu_sparklines(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project({"tests/test_sampled.py": SAMPLED})
    view = LiveRunView(root=root, workers=1, db=str(tmp_path / "db.duckdb"), coverage=False)
    run = view.start()
    run.wait(120)
    assert run.status == "passed"
    fs = run.state.files["tests/test_sampled.py"]
    head = pane_of(view, "tests/test_sampled.py").head.value
    assert head.count("<svg") == 2, head
    memory, cpu = re.findall(r'points="([^"]+)"', head)
    assert len(memory.split()) == len(cpu.split()) == len(fs.samples) >= 3
    peak = re.search(r"memory over \d+ s: peak ([\d,]+) MB", head)
    assert peak is not None and int(peak.group(1).replace(",", "")) >= 100, head
    assert re.search(r"CPU over \d+ s \(100% = one core\): peak \d+%", head), head
    assert "mean " in head, "a finished file: its peak memory and mean CPU"


def test_a_real_runs_view_draws_every_file_on_its_worker_slot(
    make_project: MakeProject, tmp_path: Path
) -> None:
    files = {f"tests/test_{i}.py": "def test_ok():\n    pass\n" for i in range(5)}
    files["tests/test_bad.py"] = "def test_bad():\n    assert False\n"
    root = make_project(files)
    view = LiveRunView(root=root, workers=2, db=str(tmp_path / "db.duckdb"), coverage=False)
    assert view.timeline.widget in view.widget.children
    run = view.start()
    run.wait(120)
    assert run.status == "failed"
    drawn = view.timeline.widget.value
    assert "2 slots busy" in drawn and drawn.count("<svg") == 1
    groups = dict(re.findall(r'data-status="(\w+)">(.*?)</g>', drawn))
    assert sorted(groups) == ["failed", "passed"], "finished files in their status's colour"
    titles = {
        status: re.findall(r"<rect [^>]*><title>([^<]*?):", group)
        for status, group in groups.items()
    }
    assert sorted(titles["passed"]) == sorted(k for k in files if k != "tests/test_bad.py")
    assert titles["failed"] == ["tests/test_bad.py"], "a rect per file, hover names it"
    rows = {fs.worker for fs in run.state.files.values()}
    assert rows == {0, 1}
