"""The dispatcher: fold first, then every observer in order; a failing one is isolated."""

from __future__ import annotations

import pytest

from devformance_nb.core import events as ev
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.state import RunState

pytestmark = pytest.mark.quick


class Recorder:
    """Notes what it was told, and the state's view of the file at that moment."""

    def __init__(self, name: str, log: list[str], fail_on: str = ""):
        self.name, self.log, self.fail_on = name, log, fail_on

    def on_event(self, event: ev.Event, state: RunState) -> None:
        status = state.files[event.file].status if event.file in state.files else "-"
        self.log.append(f"{self.name}:{event.kind}:{status}")
        if event.kind == self.fail_on:
            raise RuntimeError(f"{self.name} broke on {event.kind}")

    def tick(self, state: RunState) -> None:
        self.log.append(f"{self.name}:tick")

    def close(self, state: RunState) -> None:
        self.log.append(f"{self.name}:close:{state.status}")


def _events() -> list[ev.Event]:
    return [
        ev.RunStarted(root="/p", files=["a.py"], workers=1, executor="spawn", t=1.0),
        ev.FileStarted(file="a.py", path="/p/a.py", pid=7, command=[], t=2.0),
        ev.FileFinished(file="a.py", status="passed", returncode=0, duration=1.0, t=3.0),
        ev.RunDone(status="passed", duration=2.0, t=4.0),
    ]


def test_observers_see_the_state_after_the_fold_in_their_order() -> None:
    log: list[str] = []
    dispatcher = Dispatcher(RunState(run_id="r"), [Recorder("one", log), Recorder("two", log)])
    for event in _events():
        dispatcher.deliver(event)
    dispatcher.tick()
    dispatcher.close()
    assert log == [
        "one:run_started:-", "two:run_started:-",
        "one:file_started:running", "two:file_started:running",
        "one:file_finished:passed", "two:file_finished:passed",
        "one:run_done:-", "two:run_done:-",
        "one:tick", "two:tick",
        "one:close:passed", "two:close:passed",
    ]  # fmt: skip
    assert dispatcher.errors == []


def test_a_failing_observer_is_reported_and_the_others_go_on() -> None:
    log: list[str] = []
    reported: list[str] = []
    broken = Recorder("broken", log, fail_on="file_started")
    dispatcher = Dispatcher(RunState(run_id="r"), [broken, Recorder("ok", log)], reported.append)
    for event in _events():
        dispatcher.deliver(event)
    assert "ok:file_started:running" in log and "ok:run_done:-" in log
    assert "broken:run_done:-" in log  # a failure once does not unsubscribe it
    assert len(dispatcher.errors) == 1 and "broken broke on file_started" in dispatcher.errors[0]
    assert reported == dispatcher.errors
    assert dispatcher.state.status == "passed"


def test_notify_passes_an_already_folded_event_without_folding_again() -> None:
    log: list[str] = []
    state = RunState(run_id="r")
    started = _events()[0]
    state.apply(started)
    dispatcher = Dispatcher(state, [Recorder("one", log)])
    dispatcher.notify(started)
    assert log == ["one:run_started:-"]
    assert list(state.files) == ["a.py"]


class Interrupted(Recorder):
    """Ctrl-C lands while it handles ``fail_on`` (as in a view writing to a slow terminal)."""

    def on_event(self, event: ev.Event, state: RunState) -> None:
        self.log.append(f"{self.name}:{event.kind}")
        if event.kind == self.fail_on:
            raise KeyboardInterrupt


def test_ctrl_c_in_an_observer_reaches_the_caller_once_the_others_heard_the_event() -> None:
    log: list[str] = []
    first, second = Interrupted("one", log, fail_on="file_started"), Recorder("two", log)
    dispatcher = Dispatcher(RunState(run_id="r"), [first, second])
    started, finished = _events()[:2], _events()[2]
    dispatcher.deliver(started[0])
    with pytest.raises(KeyboardInterrupt):
        dispatcher.deliver(started[1])
    dispatcher.deliver(finished)
    assert log[2:] == [
        "one:file_started", "two:file_started:running",
        "one:file_finished", "two:file_finished:passed",
    ]  # fmt: skip
    assert dispatcher.errors == [], "an interrupt is not an observer's failure"
