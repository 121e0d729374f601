"""How a conversation's messages travel: the seam between :class:`Conversation` and a
connection.

A :class:`Transport` carries the protocol's JSON messages both ways and says why it
closed; the protocol rules stay in the core whatever carries them. The websocket
(:class:`WebSocketTransport`) carries the voice in the messages; a transport with audio of
its own (WebRTC, ``session/livekit.py``) has a :class:`TransportMedia` side as well.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from voicedesk.protocol.formats import AudioFormat

logger = logging.getLogger(__name__)

#: The largest message accepted from the agent; a bigger one ends the conversation with
#: close code 1009 (RFC 6455: message too big).
MAX_MESSAGE_BYTES = 2**24
_MESSAGE_TOO_BIG = 1009


class StartFailure(Exception):
    """A conversation could not start; ``str()`` is the sentence for the user.
    ``transient``: it may pass by itself (network, timeout, service busy), so another
    try later makes sense; a refused key or an unknown agent does not."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class TransportError(StartFailure):
    """A connection could not be opened; ``str()`` is the sentence for the user."""


class TransportClosed(Exception):
    """A message could not be sent: the connection is gone."""


AudioHandler = Callable[[bytes], None]


class TransportMedia(Protocol):
    """The audio side of a transport that carries the voice itself, beside the messages
    (WebRTC's tracks): the microphone goes to it rather than into ``user_audio_chunk``
    messages, and the agent's voice comes from it rather than from ``audio`` events."""

    @property
    def audio_format(self) -> AudioFormat:
        """The audio's format, both ways."""

    @property
    def conversation_id(self) -> str:
        """The conversation's id, known once open (before any metadata)."""

    def set_audio_handler(self, handler: AudioHandler | None) -> None:
        """Where the agent's voice goes (audible parts only)."""

    def send_audio(self, pcm: bytes) -> None:
        """The microphone (after echo cancellation), in :attr:`audio_format`."""

    def interrupt(self) -> None:
        """The agent was interrupted: drop the rest of its reply still arriving."""


class Transport(Protocol):
    """One connection to an agent, opened once and closed once."""

    @property
    def media(self) -> TransportMedia | None:
        """The audio the transport carries itself; ``None`` when the voice travels in
        the messages (the websocket)."""

    async def open(self) -> None:
        """Connect; raises :class:`TransportError` with a sentence for the user."""

    async def send(self, message: str) -> None:
        """Send one message; raises :class:`TransportClosed` once closed."""

    def messages(self) -> AsyncGenerator[str | bytes, None]:
        """The messages received, in order, until the connection closes (the core
        reports a message that is not the contract's JSON as malformed)."""

    async def close(self, code: int, reason: str) -> None:
        """Close politely (the websocket close handshake, or its equivalent)."""

    def abort(self) -> None:
        """Drop the connection now, without a goodbye."""

    @property
    def closed_with(self) -> tuple[int | None, str | None]:
        """The close code and reason the peer sent (``(None, None)``: none came)."""


class WebSocketTransport:
    """The protocol over one websocket (``wss://…/v1/convai/conversation``)."""

    #: The voice travels in the messages (``user_audio_chunk``, ``audio``).
    media: TransportMedia | None = None

    def __init__(
        self,
        url: str,
        *,
        user_agent: str,
        connect_timeout_s: float,
        close_timeout_s: float,
        keepalive_interval_s: float | None,
        keepalive_timeout_s: float | None,
    ) -> None:
        self._url = url
        self._user_agent = user_agent
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        self._keepalive_interval_s = keepalive_interval_s
        self._keepalive_timeout_s = keepalive_timeout_s
        self._ws: ClientConnection | None = None

    @property
    def connection(self) -> ClientConnection | None:
        """The websocket, once open (for tests and diagnostics)."""
        return self._ws

    async def open(self) -> None:
        logger.debug("connecting to %s", self._url)  # the log redacts signatures
        self._ws = await self._connect()

    async def _connect(self) -> ClientConnection:
        try:
            return await websockets.connect(
                self._url,
                open_timeout=self._connect_timeout_s,
                close_timeout=self._close_timeout_s,
                ping_interval=self._keepalive_interval_s,
                ping_timeout=self._keepalive_timeout_s,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                user_agent_header=self._user_agent,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise TransportError(
                    "The agent refused the connection: it needs authentication. Give the API "
                    "key of its account (--api-key or Settings)."
                ) from None
            if status == 404:
                raise TransportError("The agent was not found. Check the agent ID.") from None
            raise TransportError(
                f"The agent service answered with HTTP {status} instead of a conversation. "
                "Try again in a moment.",
                transient=status == 429 or status >= 500,
            ) from None
        except TimeoutError:
            raise TransportError(
                f"The agent service did not answer within {self._connect_timeout_s:g} s. "
                "Check your network and try again.",
                transient=True,
            ) from None
        except socket.gaierror:
            raise TransportError(
                "The agent service's address could not be looked up. Check your network "
                "connection and the server URL.",
                transient=True,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(
                "The agent service's certificate could not be verified "
                f"({exc.verify_message or 'not trusted'}), so voicedesk did not connect. "
                "Check the server URL; on a company network, ask whether a proxy inspects "
                "encrypted traffic."
            ) from None
        except ssl.SSLError as exc:
            logger.warning("TLS handshake failed: %s", exc.reason)
            raise TransportError(
                "The secure (TLS) connection to the agent service could not be set up "
                f"({exc.reason or 'handshake failed'}). Check the server URL."
            ) from None
        except ConnectionRefusedError:
            raise TransportError(
                "The agent service refused the connection. Is the server URL right, and is the "
                "server running?",
                transient=True,
            ) from None
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            logger.warning("websocket connect failed: %s", type(exc).__name__)
            # A network error may pass; a bad certificate, handshake or URL will not.
            network = isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError)
            raise TransportError(
                "Could not connect to the agent service. Check your network connection and the "
                "server URL.",
                transient=network,
            ) from None

    async def send(self, message: str) -> None:
        ws = self._opened()
        try:
            await ws.send(message)
        except ConnectionClosed:
            raise TransportClosed from None

    async def messages(self) -> AsyncGenerator[str | bytes, None]:
        ws = self._opened()
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                yield frame

    async def close(self, code: int, reason: str) -> None:
        if self._ws is not None:
            await self._ws.close(code, reason)

    def abort(self) -> None:
        transport = self._ws.transport if self._ws is not None else None
        if transport is not None:
            transport.abort()

    @property
    def closed_with(self) -> tuple[int | None, str | None]:
        if self._ws is None:
            return (None, None)
        received, sent = self._ws.protocol.close_rcvd, self._ws.protocol.close_sent
        if sent is not None and sent.code == _MESSAGE_TOO_BIG:
            # We closed it: the agent's message was over the limit (whether or not the
            # agent answered the close), not a network failure.
            return (sent.code, sent.reason)
        return (received.code, received.reason) if received is not None else (None, None)

    def _opened(self) -> ClientConnection:
        if self._ws is None:
            raise TransportClosed
        return self._ws
