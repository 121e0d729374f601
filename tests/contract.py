"""The official contract (``shared/reference/agent.asyncapi.yaml``) as a test oracle.

:func:`validate` checks one decoded message against the contract's payload schema for
its type; :func:`compare_catalog` lists every difference between the contract and our
catalog (``voicedesk.protocol.catalog``). The file lives beside the repository
(``<repo>/../shared/reference/``); ``VOICEDESK_CONTRACT`` names another path. When it
is absent, :func:`available` is false and the tests that need it skip.

The contract is AsyncAPI 2.6 with OpenAPI-flavoured schemas, turned into strict JSON
Schema (Draft 2020-12) before use:

- ``nullable: true`` becomes ``anyOf: [<the schema>, {type: "null"}]``;
- ``allOf`` whose parts say ``additionalProperties: false`` (the MCP tool-call
  variants: the shared base plus the state's own fields) would reject every object
  in JSON Schema, where each part only sees its own properties. The parts lose
  ``additionalProperties: false`` and the ``allOf`` gets ``unevaluatedProperties:
  false`` instead, which sees the properties of all parts: base and variant fields
  are allowed, anything else is not, as the contract means;
- the YAML is read with YAML 1.2 booleans, so the ``no`` of the ``Language`` enum
  (Norwegian) stays a string;
- formats are checked: ``base64`` (strict alphabet and padding) and ``date-time``
  (ISO 8601 with a date and a time).
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from voicedesk.protocol import catalog
from voicedesk.protocol.catalog import Direction, Field, MessageSpec

#: The repository's root (this file is ``<root>/tests/contract.py``).
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = REPO_ROOT.parent / "shared" / "reference" / "agent.asyncapi.yaml"
ENV_VAR = "VOICEDESK_CONTRACT"

_URI = "urn:voicedesk:agent-asyncapi"
_CHANNEL_SIDE = {"server": "publish", "client": "subscribe"}  # as the contract's comments say
_EXCERPT = 200


def path() -> Path:
    """Where the contract is looked for."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else DEFAULT_PATH


def available() -> bool:
    return path().is_file()


def skip_reason() -> str:
    return f"the official contract is not at {path()} (set {ENV_VAR} to its path)"


# --------------------------------------------------------------------------- loading


@functools.cache
def _load(file: Path) -> dict[str, Any]:
    import yaml

    class _Loader(yaml.SafeLoader):
        """YAML 1.2 booleans: only true/false, never yes/no/on/off."""

    _Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"
    )
    with file.open(encoding="utf-8") as f:
        doc = yaml.load(f, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    if not isinstance(doc, dict):
        raise ValueError(f"{file} is not a YAML mapping")
    return doc


def document() -> dict[str, Any]:
    """The contract as loaded (raw, OpenAPI-flavoured); cached per path."""
    return _load(path().resolve())


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported: {ref!r}")
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(doc, node["$ref"])
    return node


def _payload_key(doc: dict[str, Any], payload: dict[str, Any]) -> str | None:
    """The wire type of a payload schema (its ``type`` const), or ``user_audio_chunk``."""
    props = payload.get("properties", {})
    kind = _deref(doc, props.get("type", {}))
    if isinstance(kind, dict) and "const" in kind:
        return str(kind["const"])
    if "user_audio_chunk" in payload.get("required", ()):
        return "user_audio_chunk"
    return None


@functools.cache
def _messages(file: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """Per direction: wire key -> (contract message name, payload ``$ref``)."""
    doc = _load(file)
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for direction, side in _CHANNEL_SIDE.items():
        found: dict[str, tuple[str, str]] = {}
        for channel in doc["channels"].values():
            message = channel.get(side, {}).get("message", {})
            for entry in message.get("oneOf", [message] if message else []):
                ref = entry.get("$ref", "")
                name = ref.rsplit("/", 1)[-1]
                payload_ref = _deref(doc, entry)["payload"]["$ref"]
                key = _payload_key(doc, _pointer(doc, payload_ref))
                if key is None:
                    raise ValueError(f"cannot tell the wire type of message {name!r}")
                found[key] = (name, payload_ref)
        out[direction] = found
    return out


def message_types(direction: str) -> dict[str, str]:
    """The contract's messages of one direction: wire key -> contract message name."""
    return {k: v[0] for k, v in _messages(path().resolve())[direction].items()}


# --------------------------------------------------------------------------- validation


def _prepare(doc: dict[str, Any], node: Any) -> Any:
    """Strict JSON Schema from the contract's dialect (see the module docstring)."""
    if isinstance(node, list):
        return [_prepare(doc, n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _prepare(doc, v) for k, v in node.items() if k != "nullable"}
    if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#"):
        out["$ref"] = _URI + out["$ref"]
    if "allOf" in node:
        parts = []
        closed = False
        for part in node["allOf"]:
            # Inline referenced parts so that their additionalProperties can be dropped
            # here only, not wherever else the referenced schema is used.
            resolved = _prepare(doc, copy.deepcopy(_deref(doc, part)))
            if resolved.get("additionalProperties") is False:
                closed = True
                resolved = {k: v for k, v in resolved.items() if k != "additionalProperties"}
            parts.append(resolved)
        out["allOf"] = parts
        if closed:
            out["unevaluatedProperties"] = False
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return True


@functools.cache
def _validator(file: Path, direction: str, key: str) -> Any:
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = _load(file)
    prepared = _prepare(doc, doc)
    registry = Registry().with_resource(
        _URI, Resource.from_contents(prepared, default_specification=DRAFT202012)
    )
    _, payload_ref = _messages(file)[direction][key]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": _URI + payload_ref}
    checker = FormatChecker(formats=())
    checker.checks("base64")(_is_base64)
    checker.checks("date-time")(_is_date_time)
    return Draft202012Validator(schema, registry=registry, format_checker=checker)


def _short(text: str, limit: int = _EXCERPT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_text(error: Any) -> str:
    from jsonschema.exceptions import best_match

    where = ".".join(str(p) for p in error.absolute_path) or "(message)"
    if not error.context:
        return f"{where}: {_short(error.message)}"
    # A oneOf/anyOf that nothing matched: say why the most likely alternative failed,
    # skipping the alternatives whose discriminating const (``state``, …) differs.
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    plausible = [
        sub
        for subs in branches.values()
        if not any(s.validator == "const" for s in subs)
        for sub in subs
    ]
    plausible = plausible or list(error.context)
    # "unevaluated properties" is a consequence (a failed part evaluates nothing).
    deeper = best_match(
        [s for s in plausible if s.validator != "unevaluatedProperties"] or plausible
    )
    inner = ".".join(str(p) for p in deeper.absolute_path) or "(message)"
    return (
        f"{where}: matches none of the {error.validator} alternatives; "
        f"closest: {inner}: {_short(deeper.message)}"
    )


def key_of(message: object) -> str | None:
    """The message's wire type, ``user_audio_chunk`` for the one without."""
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    if isinstance(kind, str):
        return kind
    return "user_audio_chunk" if "user_audio_chunk" in message else None


def validate(direction: str, message: object) -> list[str]:
    """The contract violations of one decoded message (``[]`` when it follows it).

    ``direction`` is ``"server"`` (server -> client, the contract's ``publish``) or
    ``"client"`` (client -> server, ``subscribe``).
    """
    direction = str(direction)
    if direction not in _CHANNEL_SIDE:
        raise ValueError(f"direction must be 'server' or 'client', not {direction!r}")
    if not isinstance(message, dict):
        return [f"not a JSON object: {type(message).__name__}"]
    key = key_of(message)
    file = path().resolve()
    if key is None:
        return ["no string 'type' (and no 'user_audio_chunk')"]
    if key not in _messages(file)[direction]:
        return [f"unknown {direction} message type {key!r}"]
    validator = _validator(file, direction, key)
    errors = sorted(validator.iter_errors(message), key=lambda e: list(map(str, e.path)))
    return [_error_text(e) for e in errors]


def excerpt(message: object, limit: int = _EXCERPT) -> str:
    """A short one-line rendering of a message; long strings (base64) are cut first."""
    import json

    def shorten(node: Any) -> Any:
        if isinstance(node, str) and len(node) > 40:
            return f"{node[:24]}…({len(node)} chars)"
        if isinstance(node, dict):
            return {k: shorten(v) for k, v in node.items()}
        if isinstance(node, list):
            return [shorten(v) for v in node[:8]] + (["…"] if len(node) > 8 else [])
        return node

    try:
        text = json.dumps(shorten(message), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(message)
    return _short(text, limit)


# --------------------------------------------------------------------------- catalog comparison


class _Shape:
    """A contract schema reduced to what the catalog describes."""

    def __init__(self, doc: dict[str, Any], schema: Any) -> None:
        self.types: set[str] = set()
        self.enum: set[Any] | None = None
        self.const: Any = None
        self.minimum: float | None = None
        self.maximum: float | None = None
        self.min_items: int | None = None
        self.max_items: int | None = None
        self.format: str | None = None
        self.properties: dict[str, Any] = {}
        self.required: set[str] = set()
        self.items: Any = None
        self.variants: list[_Shape] = []
        self._read(doc, schema)

    def _read(self, doc: dict[str, Any], node: Any) -> None:
        if not isinstance(node, dict):
            return
        if node.get("nullable") is True:
            self.types.add("null")
        if "$ref" in node:
            self._read(doc, _pointer(doc, node["$ref"]))
        kind = node.get("type")
        if isinstance(kind, str):
            self.types.add(kind)
        elif isinstance(kind, list):
            self.types.update(kind)
        if "enum" in node:
            self.enum = (self.enum or set()) | set(node["enum"])
        if "const" in node:
            self.const = node["const"]
        for attr, key in (
            ("minimum", "minimum"),
            ("maximum", "maximum"),
            ("min_items", "minItems"),
            ("max_items", "maxItems"),
            ("format", "format"),
        ):
            if key in node:
                setattr(self, attr, node[key])
        self.properties.update(node.get("properties", {}))
        self.required.update(node.get("required", ()))
        if "items" in node:
            self.items = node["items"]
        for part in node.get("allOf", ()):
            self._read(doc, part)
        for combinator in ("oneOf", "anyOf"):
            members = node.get(combinator, ())
            shapes = [_Shape(doc, m) for m in members]
            if any(s.properties or s.variants for s in shapes):
                self.variants.extend(shapes)
                self.types.add("object")
            else:
                for s in shapes:  # a union of simple schemas: string-or-null and the like
                    self.types |= s.types
                    if s.enum is not None:
                        self.enum = (self.enum or set()) | s.enum

    @property
    def free(self) -> bool:
        return "object" in self.types and not self.properties and not self.variants


def _variant_key(fields: dict[str, tuple[bool, Any]]) -> tuple[tuple[str, str], ...]:
    """What tells variants apart: their const fields (``state: loading``, …)."""
    return tuple(sorted((name, str(c)) for name, (_, c) in fields.items() if c is not None))


def _compare_fields(
    doc: dict[str, Any],
    where: str,
    contract_props: dict[str, Any],
    contract_required: set[str],
    ours: tuple[Field, ...],
) -> list[str]:
    diffs: list[str] = []
    by_name = {f.name: f for f in ours}
    for name in sorted(set(contract_props) | set(by_name)):
        here = f"{where}.{name}"
        in_contract = name in contract_props
        field = by_name.get(name)
        required = name in contract_required
        if field is None:
            what = "required" if required else "optional"
            diffs.append(f"{here}: {what} in the contract, absent from the catalog")
            continue
        if not in_contract:
            what = "required" if field.required else "optional"
            diffs.append(f"{here}: {what} in the catalog, absent from the contract")
            continue
        if field.required != required:
            diffs.append(
                f"{here}: {'required' if required else 'optional'} in the contract, "
                f"{'required' if field.required else 'optional'} in the catalog"
            )
        diffs += _compare_field(doc, here, _Shape(doc, contract_props[name]), field)
    return diffs


def _compare_field(doc: dict[str, Any], where: str, shape: _Shape, field: Field) -> list[str]:
    diffs: list[str] = []
    ours_types = set(field.types)
    if shape.types and shape.types != ours_types:
        diffs.append(
            f"{where}: types {sorted(shape.types)} in the contract, {sorted(ours_types)} "
            "in the catalog"
        )
    if shape.const != field.const:
        diffs.append(f"{where}: const {shape.const!r} in the contract, {field.const!r} in ours")
    contract_enum = shape.enum or set()
    if contract_enum != set(field.enum):
        only_c = sorted(map(str, contract_enum - set(field.enum)))
        only_o = sorted(map(str, set(field.enum) - contract_enum))
        diffs.append(f"{where}: enum differs; only in contract {only_c}, only in catalog {only_o}")
    for attr, label in (
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("min_items", "minItems"),
        ("max_items", "maxItems"),
        ("format", "format"),
    ):
        theirs, ours = getattr(shape, attr), getattr(field, attr)
        numbers = isinstance(theirs, int | float) and isinstance(ours, int | float)
        if theirs != ours and not (numbers and float(theirs) == float(ours)):
            diffs.append(f"{where}: {label} {theirs!r} in the contract, {ours!r} in the catalog")
    if "object" in shape.types or "object" in ours_types:
        if shape.free != field.free:
            diffs.append(
                f"{where}: {'free' if shape.free else 'described'} object in the contract, "
                f"{'free' if field.free else 'described'} in the catalog"
            )
        elif shape.variants or field.variants:
            diffs += _compare_variants(doc, where, shape, field)
        elif not shape.free:
            diffs += _compare_fields(doc, where, shape.properties, shape.required, field.fields)
    if shape.items is not None or field.items is not None:
        if shape.items is None or field.items is None:
            diffs.append(f"{where}[]: items described on one side only")
        else:
            diffs += _compare_field(doc, f"{where}[]", _Shape(doc, shape.items), field.items)
    return diffs


def _compare_variants(doc: dict[str, Any], where: str, shape: _Shape, field: Field) -> list[str]:
    """Each contract variant (base included) against the catalog's base + that variant."""
    diffs: list[str] = []

    def contract_key(s: _Shape) -> tuple[tuple[str, str], ...]:
        consts = {
            name: (name in s.required, _Shape(doc, schema).const)
            for name, schema in (*shape.properties.items(), *s.properties.items())
        }
        return _variant_key(consts)

    def our_key(fields: tuple[Field, ...]) -> tuple[tuple[str, str], ...]:
        return _variant_key({f.name: (f.required, f.const) for f in fields})

    theirs = {contract_key(s): s for s in shape.variants}
    ours = {our_key((*field.fields, *v)): (*field.fields, *v) for v in field.variants}
    if not ours:
        ours = {our_key(field.fields): field.fields}
    if not theirs:
        theirs = {contract_key(shape): shape}
    for key in sorted(set(theirs) | set(ours)):
        label = f"{where}<{','.join(f'{n}={v}' for n, v in key) or 'variant'}>"
        if key not in ours:
            diffs.append(f"{label}: a variant of the contract, absent from the catalog")
            continue
        if key not in theirs:
            diffs.append(f"{label}: a variant of the catalog, absent from the contract")
            continue
        s = theirs[key]
        props = {**shape.properties, **s.properties}
        required = shape.required | s.required
        diffs += _compare_fields(doc, label, props, required, ours[key])
    return diffs


def _compare_message(doc: dict[str, Any], payload_ref: str, spec: MessageSpec) -> list[str]:
    shape = _Shape(doc, {"$ref": payload_ref})
    return _compare_fields(doc, spec.key, shape.properties, shape.required, spec.fields)


def compare_catalog() -> list[str]:
    """Every difference between the contract and ``voicedesk.protocol.catalog``.

    Message types present on one side only, per direction; per message, recursively
    (through ``$ref``, nested objects, array items and the MCP tool-call variants),
    fields present on one side only, required on one side and optional on the other,
    and differing JSON types (``null`` included), consts, enums, bounds and formats.
    Also the ``ClientEvent`` enum against ``catalog.CLIENT_EVENT_TYPES`` and its
    documented defaults against ``catalog.DEFAULT_CLIENT_EVENTS``.
    """
    file = path().resolve()
    doc = _load(file)
    diffs: list[str] = []
    ours_by_dir = {
        "server": {m.key: m for m in catalog.SERVER_MESSAGES},
        "client": {m.key: m for m in catalog.CLIENT_MESSAGES},
    }
    for direction, contract_msgs in _messages(file).items():
        ours = ours_by_dir[direction]
        for key in sorted(set(contract_msgs) - set(ours)):
            diffs.append(f"{direction} message {key!r}: in the contract, not in the catalog")
        for key in sorted(set(ours) - set(contract_msgs)):
            diffs.append(f"{direction} message {key!r}: in the catalog, not in the contract")
        for key in sorted(set(ours) & set(contract_msgs)):
            name, payload_ref = contract_msgs[key]
            spec = ours[key]
            if spec.direction != Direction(direction):
                diffs.append(f"{key}: catalog direction {spec.direction}, contract {direction}")
            if spec.name != name:
                diffs.append(f"{key}: contract message name {name!r}, catalog {spec.name!r}")
            diffs += [f"{direction} {d}" for d in _compare_message(doc, payload_ref, spec)]

    client_event = _pointer(doc, "#/components/schemas/ClientEvent")
    contract_events = set(client_event.get("enum", ()))
    ours_events = set(catalog.CLIENT_EVENT_TYPES)
    if contract_events != ours_events:
        diffs.append(
            "ClientEvent enum: only in contract "
            f"{sorted(contract_events - ours_events)}, only in catalog.CLIENT_EVENT_TYPES "
            f"{sorted(ours_events - contract_events)}"
        )
    override = _pointer(doc, "#/components/schemas/ConversationConfigOverride")
    description = override["properties"]["client_events"].get("description", "")
    match = re.search(r"defaults to:\s*\[([^\]]*)\]", description)
    if match:
        defaults = {d.strip() for d in match.group(1).split(",") if d.strip()}
        if defaults != set(catalog.DEFAULT_CLIENT_EVENTS):
            diffs.append(
                f"default client_events: contract {sorted(defaults)}, "
                f"catalog {sorted(catalog.DEFAULT_CLIENT_EVENTS)}"
            )
    return diffs
