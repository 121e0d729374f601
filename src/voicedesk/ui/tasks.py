"""The one way the window runs async work (Anki's ``operations`` habit).

UI handlers are plain functions; what they start goes through :class:`AsyncRunner`,
which keeps a reference to every task (asyncio only keeps weak ones), reports a
failure as a sentence instead of losing it, and cancels what is left at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from voicedesk.config import SecretRedactor

logger = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncRunner:
    """Runs coroutines for the window on the running (qasync) loop.

    ``on_failure(sentence)`` is called on the loop thread when a task raises; the
    exception itself goes to the log (where secrets are redacted), never to the user.
    """

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        what: str,
        on_done: Callable[[T], None] | None = None,
    ) -> asyncio.Task[T]:
        """Start ``coro``; ``what`` names it in a failure sentence ("start the conversation")."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def finished(done: asyncio.Task[T]) -> None:
            self._tasks.discard(done)
            if done.cancelled():
                return
            exc = done.exception()
            if exc is not None:
                logger.error("could not %s", what, exc_info=exc)
                self._on_failure(f"Could not {what}: {_describe(exc)}")
            elif on_done is not None:
                on_done(done.result())

        task.add_done_callback(finished)
        return task

    async def shutdown(self) -> None:
        """Cancel what is still running and wait for it to finish."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _describe(exc: BaseException) -> str:
    text = SecretRedactor.redact(str(exc).strip())
    return text if text else type(exc).__name__
