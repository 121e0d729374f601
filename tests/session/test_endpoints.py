"""Where the session connects: regions, websocket URLs, signed URLs, platform names."""

from __future__ import annotations

import pytest

from voicedesk.session.endpoints import (
    EndpointError,
    checked_signed_url,
    conversation_url,
    http_base,
    is_loopback_host,
    normalize_server_url,
    platform_name,
)


@pytest.mark.parametrize(
    ("server_url", "expected"),
    [
        (
            "https://api.elevenlabs.io",
            "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "https://api.elevenlabs.io/",
            "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            # As @elevenlabs/client: "us" is the global host (README, "Regions").
            "us",
            "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "global",
            "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "sg",
            "wss://api.sg.residency.elevenlabs.io/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "EU",
            "wss://api.eu.residency.elevenlabs.io/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "in",
            "wss://api.in.residency.elevenlabs.io/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "http://127.0.0.1:8765",
            "ws://127.0.0.1:8765/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "http://localhost:1",
            "ws://localhost:1/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "ws://[::1]:9",
            "ws://[::1]:9/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
        (
            "wss://proxy.example/base",
            "wss://proxy.example/base/v1/convai/conversation?agent_id=a1&source=voicedesk&version=1.0",
        ),
    ],
)
def test_websocket_url_from_the_base_url(server_url: str, expected: str) -> None:
    assert conversation_url(server_url, "a1", "voicedesk", "1.0") == expected


def test_environment_and_branch_go_on_the_websocket_url_when_set() -> None:
    url = conversation_url(
        "eu", "a1", "voicedesk", "1.0", environment="staging", branch_id="agtbrch_1"
    )
    assert url == (
        "wss://api.eu.residency.elevenlabs.io/v1/convai/conversation?agent_id=a1"
        "&source=voicedesk&version=1.0&environment=staging&branch_id=agtbrch_1"
    )
    assert "environment" not in conversation_url("global", "a1", "voicedesk", "1.0", environment="")


@pytest.mark.parametrize(
    "url", ["http://api.elevenlabs.io", "ws://10.0.0.5:80", "http://127.example.com"]
)
def test_unencrypted_non_loopback_urls_are_refused(url: str) -> None:
    with pytest.raises(EndpointError, match="not encrypted"):
        normalize_server_url(url)


@pytest.mark.parametrize("url", ["", "api.elevenlabs.io", "file:///etc/passwd", "https://"])
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(EndpointError, match="not valid"):
        normalize_server_url(url)


def test_http_base() -> None:
    assert http_base("wss://x.example/p") == "https://x.example/p"
    assert http_base("ws://127.0.0.1:1") == "http://127.0.0.1:1"
    assert http_base("https://x.example") == "https://x.example"


def test_signed_urls_keep_their_signature_and_get_source() -> None:
    url = checked_signed_url(
        "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a&conversation_signature=s1",
        "voicedesk",
        "2",
    )
    assert (
        url
        == "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=a&conversation_signature=s1&source=voicedesk&version=2"
    )
    assert (
        checked_signed_url("ws://127.0.0.1:5/x?source=old", "voicedesk", "2")
        == "ws://127.0.0.1:5/x?source=voicedesk&version=2"
    )


def test_loopback_detection() -> None:
    assert is_loopback_host("127.0.0.2")
    assert is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("192.168.1.2")
    assert not is_loopback_host(None)
    assert not is_loopback_host("example.com")


@pytest.mark.parametrize(
    ("sys_platform", "name"),
    [("win32", "windows"), ("darwin", "macos"), ("linux", "linux"), ("freebsd14", "linux")],
)
def test_platform_variable(sys_platform: str, name: str) -> None:
    assert platform_name(sys_platform) == name
