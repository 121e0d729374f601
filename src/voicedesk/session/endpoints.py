"""Where to connect: server URLs, regions, websocket URLs and signed URLs."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_SERVER_URL = "https://api.elevenlabs.io"
#: Data-residency regions and their API hosts (``convai-protocol.md``, "Endpoints").
#: ``us`` is the global host, as in the newest ``@elevenlabs/client`` (its location map
#: sends "us" there); the Python SDK's ``api.us.elevenlabs.io`` is not what the official
#: JavaScript clients use, and the contract and that client win where the two differ.
REGIONS: dict[str, str] = {
    "global": DEFAULT_SERVER_URL,
    "us": DEFAULT_SERVER_URL,
    "eu": "https://api.eu.residency.elevenlabs.io",
    "in": "https://api.in.residency.elevenlabs.io",
    "sg": "https://api.sg.residency.elevenlabs.io",
}
CONVERSATION_PATH = "/v1/convai/conversation"
SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
TOKEN_PATH = "/v1/convai/conversation/token"
#: How a conversation travels: a websocket, or WebRTC through a LiveKit room.
TRANSPORTS = ("websocket", "webrtc")
#: The LiveKit server of each API host (``convai-protocol.md``, "Endpoints"): a
#: conversation token only works in its own region.
LIVEKIT_HOSTS: dict[str, str] = {
    "api.elevenlabs.io": "wss://livekit.rtc.elevenlabs.io",
    "api.eu.residency.elevenlabs.io": "wss://livekit.rtc.eu.residency.elevenlabs.io",
    "api.in.residency.elevenlabs.io": "wss://livekit.rtc.in.residency.elevenlabs.io",
}


class EndpointError(ValueError):
    """A server URL that cannot be used; the message is a sentence for the user."""


def platform_name(sys_platform: str = sys.platform) -> str:
    """The ``platform`` dynamic variable: ``windows``, ``macos`` or ``linux``."""
    if sys_platform.startswith("win"):
        return "windows"
    if sys_platform == "darwin":
        return "macos"
    return "linux"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_server_url(server_url: str) -> str:
    """Validate a base URL (or a region name) and return it without a trailing slash.

    A non-loopback server must use https (or wss): the API key and the conversation
    travel over it.
    """
    url = REGIONS.get(server_url.strip().lower(), server_url.strip())
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise EndpointError(
            f"The server URL {url!r} is not valid. Use https://api.elevenlabs.io, a region "
            f"({', '.join(REGIONS)}) or http://127.0.0.1:PORT for a local agent."
        )
    if parts.scheme in ("http", "ws") and not is_loopback_host(parts.hostname):
        raise EndpointError(
            f"The server URL {url!r} is not encrypted. Use https:// for anything but a "
            "local agent on this computer."
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def http_base(server_url: str) -> str:
    """The REST base (http/https) of a normalized server URL."""
    parts = urlsplit(server_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


def _ws_scheme(scheme: str) -> str:
    return {"http": "ws", "https": "wss"}.get(scheme, scheme)


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to (or replacing in) its query string."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def conversation_url(
    server_url: str,
    agent_id: str,
    source: str,
    version: str,
    *,
    environment: str | None = None,
    branch_id: str | None = None,
) -> str:
    """The websocket URL of a public agent on ``server_url``; ``environment`` and
    ``branch_id`` are added when set (``convai-protocol.md``, "Endpoints")."""
    parts = urlsplit(normalize_server_url(server_url))
    base = urlunsplit(
        (_ws_scheme(parts.scheme), parts.netloc, parts.path + CONVERSATION_PATH, "", "")
    )
    return _for_agent(base, agent_id, source, version, environment, branch_id)


def _for_agent(
    base: str,
    agent_id: str,
    source: str,
    version: str,
    environment: str | None,
    branch_id: str | None,
) -> str:
    """``base`` with the query both conversation endpoints take: the agent, who asks
    (``source``, ``version``), and the agent's deployment where set."""
    deployment = {k: v for k, v in (("environment", environment), ("branch_id", branch_id)) if v}
    return with_query(base, agent_id=agent_id, source=source, version=version, **deployment)


def checked_signed_url(signed_url: str, source: str, version: str) -> str:
    """A signed URL as given, with ``source``/``version`` appended; wss unless loopback."""
    parts = urlsplit(signed_url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise EndpointError("The signed URL is not a websocket URL (wss://…).")
    if parts.scheme == "ws" and not is_loopback_host(parts.hostname):
        raise EndpointError("The signed URL is not encrypted (ws://); only wss:// is accepted.")
    return with_query(signed_url, source=source, version=version)


def token_url(
    server_url: str,
    agent_id: str,
    source: str,
    version: str,
    *,
    environment: str | None = None,
    branch_id: str | None = None,
) -> str:
    """Where to ask for a WebRTC conversation token (``GET``, with ``xi-api-key`` for a
    private agent)."""
    base = http_base(normalize_server_url(server_url)) + TOKEN_PATH
    return _for_agent(base, agent_id, source, version, environment, branch_id)


def livekit_url(
    server_url: str,
    explicit: str | None = None,
    own_addresses: Callable[[], set[str]] | None = None,
) -> str:
    """The LiveKit server for a conversation on ``server_url``: ``explicit`` when given
    (``wss://``, or ``ws://`` only to an address of this computer), else the one of the
    API host's region."""
    if explicit:
        parts = urlsplit(explicit.strip())
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise EndpointError(f"The LiveKit URL {explicit!r} is not valid: use wss://….")
        if parts.scheme == "ws" and not (
            is_loopback_host(parts.hostname)
            or parts.hostname in (own_addresses or local_addresses)()
        ):
            raise EndpointError(
                f"The LiveKit URL {explicit!r} is not encrypted. Use wss:// for anything but "
                "an address of this computer."
            )
        return explicit.strip()
    host = urlsplit(normalize_server_url(server_url)).hostname or ""
    known = LIVEKIT_HOSTS.get(host)
    if known is None:
        raise EndpointError(
            f"There is no known WebRTC server for {host}. Give one with --livekit-url, or "
            "talk over the websocket (--transport websocket)."
        )
    return known


def local_addresses() -> set[str]:
    """The IP addresses of this computer's network interfaces."""
    import psutil

    return {
        address.address.split("%")[0]
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }
