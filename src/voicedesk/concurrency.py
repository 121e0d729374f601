"""Running blocking calls off the event loop without tying up interpreter exit."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_in_daemon_thread(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new daemon thread and await its result.

    Unlike ``asyncio.to_thread``, a call that never returns (a hung DDC monitor, say)
    does not keep the process alive at exit; cancelling the await abandons the thread.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver_result(value: T) -> None:
        if not future.done():
            future.set_result(value)

    def deliver_error(exc: BaseException) -> None:
        if not future.done():
            future.set_exception(exc)

    def hand_over(callback: Callable[..., None], arg: Any) -> None:
        # RuntimeError: the loop closed while we ran; nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, arg)

    def body() -> None:
        try:
            value = fn()
        except BaseException as exc:
            hand_over(deliver_error, exc)
            return
        hand_over(deliver_result, value)

    threading.Thread(target=body, name=name, daemon=True).start()
    return await future
