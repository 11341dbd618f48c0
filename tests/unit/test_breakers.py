"""BreakerBoard: which outcomes count, open/skip/half-open/close, one probe, concurrency."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from dispatcher.breakers import BreakerBoard, BreakerSnapshot
from modelroute.domain import ErrorClass, ModelRef
from modelroute.errors import BreakerOpen, Killed, ProviderError

EP = ModelRef("sim", "model-a")
OTHER = ModelRef("sim", "model-b")
COOL_S = 0.05


def err(cls: ErrorClass) -> ProviderError:
    return ProviderError(cls, f"sim: {cls.label}")


async def attempt(board: BreakerBoard, ep: ModelRef, exc: BaseException | None) -> None:
    with board.guard(ep):
        await asyncio.sleep(0)
        if exc is not None:
            raise exc


async def fail(board: BreakerBoard, cls: ErrorClass, ep: ModelRef = EP) -> None:
    with pytest.raises(ProviderError):
        await attempt(board, ep, err(cls))


def state(board: BreakerBoard, ep: ModelRef = EP) -> BreakerSnapshot:
    return next(s for s in board.snapshot() if s.endpoint == ep)


async def open_board(board: BreakerBoard) -> None:
    for _ in range(board.fail_max):
        await fail(board, ErrorClass.OVERLOADED)
    assert state(board).state == "open"


@pytest.mark.parametrize("cls", [ErrorClass.OVERLOADED, ErrorClass.TIMEOUT, ErrorClass.INTERNAL])
async def test_tripping_classes_open_after_fail_max(cls: ErrorClass) -> None:
    board = BreakerBoard(fail_max=3, reset_timeout_s=30.0)
    for i in range(2):
        await fail(board, cls)
        assert state(board).state == "closed"
        assert state(board).fail_count == i + 1
    await fail(board, cls)
    assert state(board).state == "open"
    assert not board.is_available(EP)
    assert board.is_available(OTHER)


@pytest.mark.parametrize(
    "cls",
    [
        ErrorClass.INVALID_REQUEST,
        ErrorClass.CONTEXT_OVERFLOW,
        ErrorClass.AUTH,
        ErrorClass.RATE_LIMITED,
        ErrorClass.CONTENT_POLICY,
    ],
)
async def test_non_tripping_classes_neither_count_nor_reset(cls: ErrorClass) -> None:
    board = BreakerBoard(fail_max=3, reset_timeout_s=30.0)
    await fail(board, ErrorClass.OVERLOADED)
    await fail(board, ErrorClass.OVERLOADED)
    for _ in range(10):
        await fail(board, cls)
    assert state(board).fail_count == 2
    assert state(board).state == "closed"
    await fail(board, ErrorClass.TIMEOUT)
    assert state(board).state == "open"


async def test_cancellation_and_other_errors_are_neutral() -> None:
    board = BreakerBoard(fail_max=2, reset_timeout_s=30.0)
    await fail(board, ErrorClass.INTERNAL)
    with pytest.raises(asyncio.CancelledError):
        await attempt(board, EP, asyncio.CancelledError())
    with pytest.raises(Killed):
        await attempt(board, EP, Killed("tenant switched off"))
    with pytest.raises(KeyError):
        await attempt(board, EP, KeyError("bug"))
    assert state(board).fail_count == 1
    await fail(board, ErrorClass.INTERNAL)
    assert state(board).state == "open"


async def test_task_cancelled_mid_stream_does_not_count() -> None:
    board = BreakerBoard(fail_max=1, reset_timeout_s=30.0)
    started = asyncio.Event()

    async def hang() -> None:
        with board.guard(EP):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state(board).state == "closed"
    assert state(board).fail_count == 0


async def test_success_resets_the_count() -> None:
    board = BreakerBoard(fail_max=3, reset_timeout_s=30.0)
    await fail(board, ErrorClass.OVERLOADED)
    await fail(board, ErrorClass.OVERLOADED)
    await attempt(board, EP, None)
    assert state(board).fail_count == 0
    await fail(board, ErrorClass.OVERLOADED)
    await fail(board, ErrorClass.OVERLOADED)
    assert state(board).state == "closed"


async def test_open_breaker_skips_without_running_the_attempt() -> None:
    board = BreakerBoard(fail_max=2, reset_timeout_s=30.0)
    await open_board(board)
    ran = False
    with pytest.raises(BreakerOpen) as info, board.guard(EP):
        ran = True
    assert not ran
    assert info.value.endpoint == EP
    assert info.value.retryable


async def test_mid_stream_failure_counts() -> None:
    """The whole stream consumption sits inside the guard: a failure after chunks counts."""
    board = BreakerBoard(fail_max=1, reset_timeout_s=30.0)

    async def chunks() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        raise err(ErrorClass.OVERLOADED)

    got: list[str] = []
    with pytest.raises(ProviderError), board.guard(EP):
        async for c in chunks():
            got.append(c)
    assert got == ["a", "b"]
    assert state(board).state == "open"


async def test_half_open_single_probe_then_close() -> None:
    board = BreakerBoard(fail_max=2, reset_timeout_s=COOL_S)
    await open_board(board)
    assert not board.is_available(EP)
    await asyncio.sleep(COOL_S * 2)
    assert board.is_available(EP)

    release = asyncio.Event()
    probe_in = asyncio.Event()
    entered = 0

    async def caller() -> str:
        nonlocal entered
        try:
            with board.guard(EP):
                entered += 1
                probe_in.set()
                await release.wait()
        except BreakerOpen:
            return "skipped"
        return "ran"

    tasks = [asyncio.create_task(caller()) for _ in range(20)]
    await probe_in.wait()
    await asyncio.sleep(0)
    assert entered == 1
    assert state(board).state == "half_open"
    assert not board.is_available(EP)
    release.set()
    results = await asyncio.gather(*tasks)
    assert results.count("ran") == 1
    assert results.count("skipped") == 19
    assert state(board).state == "closed"
    assert state(board).fail_count == 0
    assert board.is_available(EP)


async def test_failed_probe_reopens() -> None:
    board = BreakerBoard(fail_max=2, reset_timeout_s=COOL_S)
    await open_board(board)
    await asyncio.sleep(COOL_S * 2)
    await fail(board, ErrorClass.TIMEOUT)
    assert state(board).state == "open"
    assert not board.is_available(EP)


async def test_neutral_probe_frees_the_slot() -> None:
    board = BreakerBoard(fail_max=2, reset_timeout_s=COOL_S)
    await open_board(board)
    await asyncio.sleep(COOL_S * 2)
    await fail(board, ErrorClass.INVALID_REQUEST)
    assert state(board).state == "half_open"
    assert board.is_available(EP)
    await attempt(board, EP, None)
    assert state(board).state == "closed"


async def test_stale_attempts_do_not_flip_a_newer_state() -> None:
    """An attempt admitted while closed that ends after the breaker opened changes nothing."""
    board = BreakerBoard(fail_max=2, reset_timeout_s=30.0)
    release = asyncio.Event()

    async def slow(exc: BaseException | None) -> None:
        with board.guard(EP):
            await release.wait()
            if exc is not None:
                raise exc

    slow_ok = asyncio.create_task(slow(None))
    slow_bad = asyncio.create_task(slow(err(ErrorClass.OVERLOADED)))
    await asyncio.sleep(0)
    await open_board(board)
    changed = state(board).changed_at_unix_ms
    release.set()
    await slow_ok
    with pytest.raises(ProviderError):
        await slow_bad
    assert state(board).state == "open"
    assert state(board).changed_at_unix_ms == changed


async def test_state_changes_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[BreakerSnapshot] = []
    board = BreakerBoard(fail_max=1, reset_timeout_s=COOL_S, on_change=seen.append)
    with caplog.at_level(logging.INFO, logger="modelroute.breakers"):
        await fail(board, ErrorClass.OVERLOADED)
        await asyncio.sleep(COOL_S * 2)
        await attempt(board, EP, None)
    assert [s.state for s in seen] == ["open", "half_open", "closed"]
    assert all(s.endpoint == EP for s in seen)
    assert seen[0].fail_count == 1
    msgs = [r.getMessage() for r in caplog.records if r.name == "modelroute.breakers"]
    assert msgs[0] == "breaker sim/model-a: closed -> open (failures 1)"
    assert caplog.records[0].levelno == logging.WARNING
    assert "half_open -> closed" in msgs[-1]


async def test_failing_callback_does_not_break_the_attempt() -> None:
    def boom(_: BreakerSnapshot) -> None:
        raise RuntimeError("callback bug")

    board = BreakerBoard(fail_max=1, reset_timeout_s=30.0, on_change=boom)
    await fail(board, ErrorClass.OVERLOADED)
    assert state(board).state == "open"


async def test_snapshot_lists_every_endpoint_seen() -> None:
    board = BreakerBoard(fail_max=1, reset_timeout_s=30.0)
    assert board.snapshot() == []
    await attempt(board, EP, None)
    await fail(board, ErrorClass.OVERLOADED, OTHER)
    snaps = {s.endpoint: s for s in board.snapshot()}
    assert snaps[EP].state == "closed"
    assert snaps[OTHER].state == "open"
    assert snaps[OTHER].changed_at_unix_ms >= snaps[EP].changed_at_unix_ms


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        BreakerBoard(fail_max=0)


async def test_many_concurrent_attempts_count_exactly() -> None:
    """200 interleaved tasks: each tripping failure counts once, each neutral one not at all,
    and once open every further caller is skipped without running."""
    board = BreakerBoard(fail_max=60, reset_timeout_s=30.0)
    gate = asyncio.Event()
    all_in = asyncio.Event()
    ran = 0

    async def one(i: int) -> str:
        nonlocal ran
        try:
            with board.guard(EP):
                ran += 1
                if ran == 200:
                    all_in.set()
                await gate.wait()
                await asyncio.sleep(0)
                if i % 4 == 0:
                    raise err(ErrorClass.OVERLOADED)
                if i % 4 == 1:
                    raise err(ErrorClass.RATE_LIMITED)
                if i % 4 == 2:
                    raise asyncio.CancelledError
        except BreakerOpen:
            return "skipped"
        except ProviderError as e:
            return e.error_class.label
        except asyncio.CancelledError:
            return "cancelled"
        return "ok"

    tasks = [asyncio.create_task(one(i)) for i in range(200)]
    await all_in.wait()
    gate.set()
    results = await asyncio.gather(*tasks)
    assert results.count("overloaded") == 50
    assert results.count("rate_limited") == 50
    assert state(board).state == "closed"
    # Waiters resume in FIFO order, so the last to finish is i=199, a success: count reset.
    assert state(board).fail_count == 0

    # Now only failures: the breaker opens at fail_max and the rest are skipped.
    board2 = BreakerBoard(fail_max=10, reset_timeout_s=30.0)

    async def bad() -> str:
        try:
            await attempt(board2, EP, err(ErrorClass.TIMEOUT))
        except BreakerOpen:
            return "skipped"
        except ProviderError:
            return "failed"
        return "ok"

    first = await asyncio.gather(*(bad() for _ in range(50)))
    assert first.count("failed") == 50  # all admitted while closed
    assert state(board2).state == "open"
    assert state(board2).fail_count == 10  # the 40 stale failures did not count
    later = await asyncio.gather(*(bad() for _ in range(50)))
    assert later == ["skipped"] * 50
