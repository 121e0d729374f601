"""The tool registry and the protocol's string results."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from voicedesk.tools import ClientTool, ToolDefinition, ToolRegistry, stringify_result


def test_results_as_the_reference_client_sends_them() -> None:
    assert stringify_result(0) == "0"
    assert stringify_result(0.0) == "0"
    assert stringify_result(0.82) == "0.82"
    assert stringify_result(-3) == "-3"
    assert stringify_result(True) == "true"
    assert stringify_result(False) == "false"
    assert stringify_result(None) == "Client tool execution successful."
    assert stringify_result("") == ""
    assert stringify_result({"a": [1, 2]}) == '{"a":[1,2]}'
    assert stringify_result(math.nan) == "NaN"
    assert stringify_result(math.inf) == "Infinity"
    assert stringify_result(-math.inf) == "-Infinity"
    assert stringify_result(1e22) == "1e+22"
    assert stringify_result({1, 2}) == '"{1, 2}"'  # not JSON: its str(), as a JSON string


def test_unserialisable_values_still_become_strings() -> None:
    circular: list[Any] = []
    circular.append(circular)
    assert isinstance(stringify_result(circular), str)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_results_are_always_strings(value: Any) -> None:
    result = stringify_result(value)
    assert isinstance(result, str)
    if isinstance(value, dict | list) and "NaN" not in result:
        assert json.loads(result) == value  # objects go out as JSON, and come back the same


def test_registry() -> None:
    tool = ClientTool(ToolDefinition("t", "does t"), lambda p: 1)
    registry = ToolRegistry([tool])
    assert "t" in registry
    assert len(registry) == 1
    assert list(registry) == [tool]
    assert registry.get("missing") is None
    assert registry.definitions() == [
        {
            "name": "t",
            "description": "does t",
            "parameters": {"type": "object", "properties": {}, "required": []},
            "wait_for_response": True,
            "response_timeout_secs": 3.0,
        }
    ]
    assert not tool.is_async
