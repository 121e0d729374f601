"""The message catalog against the official contract, and the parser against both.

Frames are generated from the catalog (``voicedesk.protocol.catalog``), never from the
contract file, so the property tests run without it; the tests that read the contract
(``tests/contract.py``) skip when it is absent.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import contract
from tests.conftest import scaled
from voicedesk.protocol import catalog
from voicedesk.protocol.catalog import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    Field,
    MessageSpec,
    message_key,
)
from voicedesk.protocol.events import MalformedFrame, UnknownEvent
from voicedesk.protocol.parse import parse_server_frame

needs_contract = pytest.mark.skipif(not contract.available(), reason=contract.skip_reason())

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the autouse fixtures of conftest.py
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# --------------------------------------------------------------------------- strategies

_INT_LIMIT = 2**53  # exact in every JSON implementation

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-_INT_LIMIT, _INT_LIMIT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_FREE_OBJECT = st.dictionaries(st.text(max_size=8), _JSON, max_size=3)

_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
_DATE_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=_ZONES
).flatmap(lambda d: st.sampled_from([d.isoformat(), d.isoformat().replace("+00:00", "Z")]))
_BASE64 = st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode("ascii"))


def _string(field: Field) -> st.SearchStrategy[Any]:
    if field.const is not None:
        return st.just(field.const)
    if field.enum:
        return st.sampled_from([e for e in field.enum if isinstance(e, str)])
    if field.format == "base64":
        return _BASE64
    if field.format == "date-time":
        return _DATE_TIMES
    if field.format is not None:
        raise NotImplementedError(f"{field.name}: no generator for format {field.format!r}")
    return st.text(max_size=20)


def _integer(field: Field) -> st.SearchStrategy[Any]:
    if field.enum:
        return st.sampled_from([e for e in field.enum if isinstance(e, int)])
    low = -_INT_LIMIT if field.minimum is None else math.ceil(field.minimum)
    high = _INT_LIMIT if field.maximum is None else math.floor(field.maximum)
    return st.integers(low, high)


def _number(field: Field) -> st.SearchStrategy[Any]:
    floats = st.floats(
        min_value=field.minimum, max_value=field.maximum, allow_nan=False, allow_infinity=False
    )
    low = -_INT_LIMIT if field.minimum is None else math.ceil(field.minimum)
    high = _INT_LIMIT if field.maximum is None else math.floor(field.maximum)
    return floats | st.integers(low, high) if low <= high else floats


def _array(field: Field) -> st.SearchStrategy[Any]:
    assert field.items is not None, f"{field.name}: an array without items"
    low = field.min_items or 0
    high = max(low, min(4, field.max_items if field.max_items is not None else 4))
    return st.lists(value(field.items), min_size=low, max_size=high)


def _object(fields: tuple[Field, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {f.name: value(f) for f in fields if f.required},
        optional={f.name: value(f) for f in fields if not f.required},
    )


def _typed(field: Field, kind: str) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "string":
        return _string(field)
    if kind == "integer":
        return _integer(field)
    if kind == "number":
        return _number(field)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return _array(field)
    if kind == "object":
        if field.free:
            return _FREE_OBJECT
        if field.variants:
            return st.one_of([_object((*field.fields, *v)) for v in field.variants])
        return _object(field.fields)
    raise NotImplementedError(f"{field.name}: unknown JSON type {kind!r}")


def value(field: Field) -> st.SearchStrategy[Any]:
    """Contract-valid values of one field, as the catalog describes it."""
    return st.one_of([_typed(field, kind) for kind in field.types])


@functools.cache
def frames(spec: MessageSpec) -> st.SearchStrategy[dict[str, Any]]:
    """Contract-valid messages of one type: required fields always, optional ones sometimes."""
    return _object(spec.fields)


SERVER_KEYS = [m.key for m in SERVER_MESSAGES]
CLIENT_KEYS = [m.key for m in CLIENT_MESSAGES]


def _spec_of(direction: catalog.Direction, key: str) -> MessageSpec:
    spec = catalog.message_spec(direction, key)
    assert spec is not None, key
    return spec


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize("key", SERVER_KEYS)
@PROPERTY
@given(data=st.data())
def test_parser_understands_every_contract_valid_server_frame(
    key: str, data: st.DataObject
) -> None:
    frame = data.draw(frames(_spec_of(catalog.Direction.SERVER, key)), label="frame")
    assert message_key(frame) == key
    text = json.dumps(frame, ensure_ascii=data.draw(st.booleans(), label="ensure_ascii"))
    event = parse_server_frame(text)
    assert not isinstance(event, MalformedFrame | UnknownEvent), f"{event!r} from {text[:300]}"


# --------------------------------------------------------------------------- catalog vs contract


@needs_contract
def test_catalog_matches_the_contract() -> None:
    differences = contract.compare_catalog()
    assert not differences, "the catalog and the contract differ:\n" + "\n".join(differences)


@needs_contract
@pytest.mark.parametrize("key", SERVER_KEYS)
@PROPERTY
@given(data=st.data())
def test_generated_server_frames_follow_the_contract(key: str, data: st.DataObject) -> None:
    frame = data.draw(frames(_spec_of(catalog.Direction.SERVER, key)), label="frame")
    errors = contract.validate("server", frame)
    assert not errors, f"{errors} in {contract.excerpt(frame, 400)}"


@needs_contract
@pytest.mark.parametrize("key", CLIENT_KEYS)
@PROPERTY
@given(data=st.data())
def test_generated_client_frames_follow_the_contract(key: str, data: st.DataObject) -> None:
    frame = data.draw(frames(_spec_of(catalog.Direction.CLIENT, key)), label="frame")
    assert message_key(frame) == key
    errors = contract.validate("client", frame)
    assert not errors, f"{errors} in {contract.excerpt(frame, 400)}"


# --------------------------------------------------------------------------- the validator itself

_MCP = {
    "service_id": "s",
    "tool_call_id": "t1",
    "tool_name": "search",
    "parameters": {"q": "x"},
    "timestamp": "2025-01-02T03:04:05Z",
}


@needs_contract
@pytest.mark.parametrize(
    ("direction", "frame"),
    [
        ("server", {"type": "error", "error_event": {"code": 1008}}),
        ("server", {"type": "error", "error_event": {"code": 1002, "error_type": None}}),
        ("server", {"type": "audio", "audio_event": {"audio_base_64": "AAEC", "event_id": 3}}),
        ("server", {"type": "ping", "ping_event": {"event_id": 1, "ping_ms": None}}),
        ("server", {"type": "guardrail_triggered"}),
        ("server", {"type": "mcp_tool_call", "mcp_tool_call": {**_MCP, "state": "loading"}}),
        (
            "server",
            {
                "type": "mcp_tool_call",
                "mcp_tool_call": {**_MCP, "state": "awaiting_approval", "approval_timeout_secs": 9},
            },
        ),
        ("client", {"type": "feedback", "event_id": 4, "score": None}),
        ("client", {"type": "feedback", "event_id": 4, "score": "like"}),
        ("client", {"user_audio_chunk": "AAAA"}),
        ("client", {"type": "user_message", "text": None}),
        (
            "client",
            {
                "type": "conversation_initiation_client_data",
                "conversation_config_override": {"agent": {"language": "no"}},
            },
        ),
        ("client", {"type": "multimodal_message", "text": None, "file": None}),
    ],
    ids=lambda v: v if isinstance(v, str) else contract.key_of(v),
)
def test_validator_accepts(direction: str, frame: dict[str, Any]) -> None:
    assert contract.validate(direction, frame) == []


@needs_contract
@pytest.mark.parametrize(
    ("direction", "frame", "expected"),
    [
        ("server", {"type": "error", "error_event": {"message": "x"}}, "'code' is a required"),
        ("server", {"type": "error", "error_event": {"code": 4000}}, "is not one of"),
        ("server", {"type": "audio", "audio_event": {"audio_base_64": "AA=="}}, "'event_id'"),
        (
            "server",
            {"type": "audio", "audio_event": {"audio_base_64": "@@", "event_id": 1}},
            "base64",
        ),
        ("server", {"type": "vad_score", "vad_score_event": {"vad_score": 1.5}}, "maximum"),
        ("server", {"type": "ping", "ping_event": {"event_id": "1"}}, "not of type 'integer'"),
        (
            "server",
            {"type": "mcp_tool_call", "mcp_tool_call": {**_MCP, "state": "failure"}},
            "'error_message' is a required",
        ),
        (
            "server",
            {"type": "mcp_tool_call", "mcp_tool_call": {**_MCP, "state": "loading", "extra": 1}},
            "'extra' was unexpected",
        ),
        (
            "server",
            {
                "type": "mcp_tool_call",
                "mcp_tool_call": {**_MCP, "timestamp": "yesterday", "state": "loading"},
            },
            "date-time",
        ),
        ("server", {"type": "no_such_event"}, "unknown server message type"),
        ("server", {"type": "pong", "event_id": 1}, "unknown server message type"),
        ("server", {"hello": 1}, "no string 'type'"),
        ("server", ["not", "an", "object"], "not a JSON object"),
        ("client", {"type": "feedback", "event_id": 4}, "'score' is a required"),
        ("client", {"type": "feedback", "event_id": 4, "score": "meh"}, "score"),
        ("client", {"type": "client_tool_result", "tool_call_id": "t", "result": {}}, "result"),
        ("client", {"user_audio_chunk": 12}, "not of type 'string'"),
        ("client", {"type": "user_message", "text": 5}, "text"),
        (
            "client",
            {
                "type": "conversation_initiation_client_data",
                "conversation_config_override": {"conversation": {"client_events": []}},
            },
            "client_events",
        ),
        ("client", {"type": "audio", "audio_event": {}}, "unknown client message type"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 12 else None,
)
def test_validator_rejects(direction: str, frame: Any, expected: str) -> None:
    errors = contract.validate(direction, frame)
    assert errors, f"{frame!r} was accepted"
    assert any(expected in e for e in errors), errors
    assert all(len(e) < 600 for e in errors), errors


@needs_contract
def test_excerpts_are_short_and_hide_base64() -> None:
    frame = {"user_audio_chunk": base64.b64encode(bytes(30_000)).decode()}
    text = contract.excerpt(frame)
    assert len(text) <= 200
    assert "40000 chars" in text


# --------------------------------------------------------------------------- the comparison itself


def _replace_spec(monkeypatch: pytest.MonkeyPatch, key: str, new: MessageSpec | None) -> None:
    specs = [s for s in SERVER_MESSAGES if s.key != key]
    if new is not None:
        specs.append(new)
    monkeypatch.setattr(catalog, "SERVER_MESSAGES", tuple(specs))


def _spec(key: str) -> MessageSpec:
    spec = catalog.message_spec(catalog.Direction.SERVER, key)
    assert spec is not None
    return spec


def _with_body(spec: MessageSpec, *fields: Field, variants: Any = None) -> MessageSpec:
    body = spec.body
    assert body is not None
    changes: dict[str, Any] = {"fields": fields}
    if variants is not None:
        changes["variants"] = variants
    new_body = dataclasses.replace(body, **changes)
    return dataclasses.replace(
        spec, fields=tuple(new_body if f is body else f for f in spec.fields)
    )


@needs_contract
def test_comparison_notices_missing_and_extra_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    kind = Field("type", ("string",), required=True, const="extra_event")
    extra = MessageSpec("Extra", "extra_event", catalog.Direction.SERVER, (kind,))
    _replace_spec(monkeypatch, "ping", extra)
    diffs = contract.compare_catalog()
    assert "server message 'ping': in the contract, not in the catalog" in diffs
    assert "server message 'extra_event': in the catalog, not in the contract" in diffs


@needs_contract
def test_comparison_notices_required_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    error = _spec("error")
    assert error.body is not None
    fields = [f for f in error.body.fields if f.name != "code"]
    fields = [dataclasses.replace(f, required=True) if f.name == "message" else f for f in fields]
    _replace_spec(monkeypatch, "error", _with_body(error, *fields))
    diffs = contract.compare_catalog()
    assert "server error.error_event.code: required in the contract, absent from the catalog" in (
        diffs
    )
    assert (
        "server error.error_event.message: optional in the contract, required in the catalog"
        in diffs
    )


@needs_contract
def test_comparison_notices_enums_types_and_nullability(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = _spec("conversation_initiation_metadata")
    assert metadata.body is not None
    fields = [
        dataclasses.replace(f, enum=f.enum[:-1])
        if f.name == "agent_output_audio_format"
        else dataclasses.replace(f, types=("string", "null"))
        if f.name == "conversation_id"
        else f
        for f in metadata.body.fields
    ]
    _replace_spec(monkeypatch, "conversation_initiation_metadata", _with_body(metadata, *fields))
    diffs = "\n".join(contract.compare_catalog())
    where = "server conversation_initiation_metadata.conversation_initiation_metadata_event"
    assert (
        f"{where}.agent_output_audio_format: enum differs; only in contract ['ulaw_8000']" in diffs
    )
    assert f"{where}.conversation_id: types ['string'] in the contract" in diffs


@needs_contract
def test_comparison_notices_mcp_variants(monkeypatch: pytest.MonkeyPatch) -> None:
    mcp = _spec("mcp_tool_call")
    body = mcp.body
    assert body is not None
    variants = tuple(
        v for v in body.variants if not any(f.name == "state" and f.const == "failure" for f in v)
    )
    base = tuple(f for f in body.fields if f.name != "timestamp")
    _replace_spec(monkeypatch, "mcp_tool_call", _with_body(mcp, *base, variants=variants))
    diffs = "\n".join(contract.compare_catalog())
    assert "mcp_tool_call<state=failure>: a variant of the contract, absent" in diffs
    assert "mcp_tool_call<state=loading>.timestamp: required in the contract, absent" in diffs


# --------------------------------------------------------------------------- the suite-wide check


def _our_observers() -> list[Any]:
    from voicedesk.localagent import server

    return [
        o
        for o in server.frame_observers
        if getattr(o, "__qualname__", "").startswith("_frames_follow_the_contract.")
    ]


@needs_contract
async def test_frames_the_local_agent_sees_are_checked(agent: Any) -> None:
    """conftest.py's observer is registered and the local agent reports to it."""
    import websockets

    from tests.conftest import _contract_tally

    assert len(_our_observers()) == 1
    before = _contract_tally.observed
    init = {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {"conversation": {"text_only": True}},
        "dynamic_variables": {"platform": "linux"},
    }
    async with websockets.connect(agent.ws_url()) as ws:
        await ws.send(json.dumps(init))
        while json.loads(await asyncio.wait_for(ws.recv(), scaled(5))).get("type") != (
            "conversation_initiation_metadata"
        ):
            pass
    assert _contract_tally.observed >= before + 2  # the initiation and the metadata


@pytest.mark.contract_violation
def test_tests_marked_contract_violation_are_not_checked() -> None:
    assert _our_observers() == []
