"""Where a walk goes on past a greenlet's or a thread's start."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

import greenlet
import pytest

from devformance_nb.plugin.capture.boundaries import Crossing, crossings

pytestmark = pytest.mark.quick


def never_project(filename: str) -> bool:
    return False


def this_file(filename: str) -> bool:
    """This test file is the project."""
    return filename == __file__


def test_a_greenlet_goes_on_in_its_parents_suspended_frame() -> None:
    here = sys._getframe()

    def inside() -> list[Crossing]:
        return list(crossings(0, never_project))

    found = greenlet.greenlet(inside).switch()
    frames: list[FrameType] = []
    frame: FrameType | None = found[0].frame
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    assert here in frames and not found[0].managing


def test_another_thread_goes_on_in_the_waiting_test_thread() -> None:
    test_thread = threading.get_ident()
    with ThreadPoolExecutor(1) as pool:
        found = pool.submit(lambda: list(crossings(test_thread, this_file))).result()
    assert len(found) == 1 and not found[0].managing  # waiting on the future's result


def test_a_test_thread_joining_its_own_threads_is_managing_them() -> None:
    test_thread = threading.get_ident()
    found: list[Crossing] = []
    started = threading.Event()

    def work() -> None:
        started.wait()
        found.extend(crossings(test_thread, this_file))

    worker = threading.Thread(target=work)
    worker.start()
    started.set()
    worker.join()  # the project's own join: where the test thread stands is a race
    assert len(found) == 1 and found[0].managing


def test_a_library_starting_its_worker_thread_is_on_its_way_to_waiting() -> None:
    test_thread = threading.get_ident()
    ran = threading.Event()
    found: list[Crossing] = []

    def work() -> None:
        found.extend(crossings(test_thread, this_file))
        ran.set()

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(work)  # may still be inside the pool's Thread.start
        future.result()
    assert ran.is_set() and len(found) == 1 and not found[0].managing


def test_the_test_thread_itself_crosses_nothing() -> None:
    assert list(crossings(threading.get_ident(), never_project)) == []
