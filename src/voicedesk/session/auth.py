"""Credentials for a conversation: a signed URL for a private agent (through the
elevenlabs SDK), a conversation token for WebRTC."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from voicedesk.protocol.errors import api_error_sentence
from voicedesk.session.backoff import backoff_delays
from voicedesk.session.endpoints import http_base, token_url
from voicedesk.session.transport import StartFailure

logger = logging.getLogger(__name__)

#: A signed-URL request the API answers with 429 (busy, or too many requests) is tried
#: this many times in all, waiting as ``Retry-After`` says (at most
#: :data:`RETRY_AFTER_CAP_S`) or else 1 s, 2 s, ... with jitter.
RATE_LIMITED_TRIES = 4
RETRY_AFTER_CAP_S = 10.0


class AuthError(StartFailure):
    """Getting a signed URL or a token failed; the message is a sentence for the user."""


class RateLimited(AuthError):
    """HTTP 429: try again later (``retry_after_s``: what the server asked, if it did)."""

    def __init__(self, sentence: str, retry_after_s: float | None) -> None:
        super().__init__(sentence, transient=True)
        self.retry_after_s = retry_after_s


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (a number of seconds; an HTTP date is not honoured)."""
    value = {k.lower(): v for k, v in (headers or {}).items()}.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 else seconds


def _error_code(body: Any) -> str | None:
    # The API answers {"detail": {"status": "invalid_api_key", "message": "…"}}.
    if isinstance(body, dict):
        detail = body.get("detail", body)
        if isinstance(detail, dict):
            for key in ("status", "code", "error"):
                value = detail.get(key)
                if isinstance(value, str):
                    return value
    return None


def _busy(status: int | None) -> bool:
    """An answer that may change by itself: too many requests, or the service failing."""
    return status is not None and (status == 429 or status >= 500)


@contextlib.contextmanager
def _reaching(server_url: str, timeout_s: float, what: str) -> Iterator[None]:
    """A request to the REST API: a timeout or a network failure is a sentence."""
    import httpx

    try:
        yield
    except httpx.TimeoutException:
        raise AuthError(
            f"ElevenLabs did not answer within {timeout_s:g} s. Check your network and try again.",
            transient=True,
        ) from None
    except httpx.HTTPError as exc:
        logger.warning("%s request failed: %s", what, type(exc).__name__)
        raise AuthError(
            f"Could not reach {http_base(server_url)}. Check your network connection and the "
            "server URL.",
            transient=True,
        ) from None


def fetch_signed_url_blocking(
    server_url: str,
    agent_id: str,
    api_key: str,
    timeout_s: float,
    *,
    environment: str | None = None,
    branch_id: str | None = None,
) -> str:
    """Ask the REST API for a signed URL (for the agent's ``environment`` and
    ``branch_id`` when set). Blocks: call it off the event loop."""
    # The SDK costs ~0.4 s to import; only private agents pay for it, and only here.
    from elevenlabs.client import ElevenLabs
    from elevenlabs.core.api_error import ApiError

    client = ElevenLabs(api_key=api_key, base_url=http_base(server_url), timeout=timeout_s)
    with _reaching(server_url, timeout_s, "signed URL"):
        try:
            # No retries inside the SDK: they sleep in this thread, beyond cancelling and
            # unannounced; fetch_signed_url retries a 429 itself.
            response = client.conversational_ai.conversations.get_signed_url(
                agent_id=agent_id,
                environment=environment or None,
                branch_id=branch_id or None,
                request_options={"max_retries": 0},
            )
        except ApiError as exc:
            code = _error_code(exc.body)
            logger.warning("signed URL request failed: HTTP %s (%s)", exc.status_code, code)
            sentence = api_error_sentence(code, exc.status_code)
            if exc.status_code == 429:
                raise RateLimited(sentence, _retry_after(exc.headers)) from None
            if exc.status_code == 403 and sentence.startswith("The request to ElevenLabs failed"):
                sentence = (
                    "The API key may not start conversations with this agent"
                    f"{f' ({code})' if code else ''}. Check that the key has access to "
                    "ElevenLabs Agents and that the agent belongs to its account."
                )
            if exc.status_code is not None and 200 <= exc.status_code < 300:
                sentence = "ElevenLabs answered without a signed URL. Try again in a moment."
            raise AuthError(sentence, transient=_busy(exc.status_code)) from None
    signed_url = getattr(response, "signed_url", None)
    if not isinstance(signed_url, str) or not signed_url:
        raise AuthError("ElevenLabs answered without a signed URL. Try again in a moment.")
    return signed_url


async def fetch_signed_url(
    server_url: str,
    agent_id: str,
    api_key: str,
    timeout_s: float,
    *,
    on_retry: Callable[[str], None] | None = None,
    delays: Iterator[float] | None = None,
    **deployment: str | None,
) -> str:
    """:func:`fetch_signed_url_blocking` in a worker thread (``deployment``: its
    ``environment`` and ``branch_id``).

    A 429 is tried again, :data:`RATE_LIMITED_TRIES` times in all: after the server's
    ``Retry-After`` (capped) or the next of ``delays`` (default: :func:`backoff_delays`),
    each wait told to ``on_retry`` as a sentence. Cancelling stops the waiting."""
    schedule = delays or backoff_delays(tries=RATE_LIMITED_TRIES - 1)
    fetch = functools.partial(
        fetch_signed_url_blocking, server_url, agent_id, api_key, timeout_s, **deployment
    )
    tried = 0
    while True:
        tried += 1
        try:
            return await asyncio.to_thread(fetch)
        except RateLimited as exc:
            delay = next(schedule, None)
            if delay is None:
                raise AuthError(
                    f"{exc} (Still busy after {tried} tries.)", transient=True
                ) from None
            if exc.retry_after_s is not None:
                delay = min(exc.retry_after_s, RETRY_AFTER_CAP_S)
            logger.info("signed URL: HTTP 429, try %d again in %.1f s", tried + 1, delay)
            if on_retry is not None:
                on_retry(f"ElevenLabs is busy; trying again in {delay:.0f} s (try {tried + 1}).")
            await asyncio.sleep(delay)


def fetch_conversation_token_blocking(
    server_url: str,
    agent_id: str,
    api_key: str | None,
    timeout_s: float,
    *,
    source: str,
    version: str,
    environment: str | None = None,
    branch_id: str | None = None,
) -> str:
    """Ask the REST API for a WebRTC conversation token (``api_key`` for a private
    agent; a public one needs none). Blocks: call it off the event loop."""
    import httpx

    url = token_url(
        server_url, agent_id, source, version, environment=environment, branch_id=branch_id
    )
    headers = {"xi-api-key": api_key} if api_key else {}
    with _reaching(server_url, timeout_s, "conversation token"):
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        code, status = _error_code(body), response.status_code
        logger.warning("conversation token request failed: HTTP %s (%s)", status, code)
        if status in (401, 403) and not api_key and code is None:
            raise AuthError(
                "The agent needs authentication: give the API key of its account (--api-key "
                "or Settings)."
            )
        raise AuthError(api_error_sentence(code, status), transient=_busy(status))
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthError("ElevenLabs answered without a conversation token. Try again in a moment.")
    return token


async def fetch_conversation_token(
    server_url: str, agent_id: str, api_key: str | None, timeout_s: float, **kwargs: Any
) -> str:
    """:func:`fetch_conversation_token_blocking` in a worker thread."""
    return await asyncio.to_thread(
        functools.partial(
            fetch_conversation_token_blocking, server_url, agent_id, api_key, timeout_s, **kwargs
        )
    )
