"""The success criteria's JSON Schema (``pg-criteria/1``, in the SDK) as the server shows it:
the menu of automatic checks the criteria editor offers, and the schema the OpenAPI document
gives the ``criteria`` fields.

Both are derived from ``proving_ground.criteria.parsing.CRITERIA_SCHEMA``, never copied by
hand, so a kind of check or a parameter added to the SDK appears in the editor and in the API
documentation without a change here (docs/criteria.md).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from proving_ground.criteria.automatic_checks import CHECK_CLASSES
from proving_ground.criteria.parsing import CRITERIA_SCHEMA

# Keys every check has; the editor shows them apart from the kind's parameters.
_COMMON_CHECK_KEYS = ("id", "type", "description")
# Unit suffixes of parameter names (docs/criteria.md: "Units are in the parameter names").
_UNITS = {"_s": "s", "_hz": "Hz"}


def _resolve(node: Any) -> Any:
    """`node` with every local ``$ref`` replaced by the definition it names (the criteria
    schema is not recursive), siblings of the ``$ref`` kept."""
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        out.update(_resolve(CRITERIA_SCHEMA["$defs"][ref.removeprefix("#/$defs/")]))
    for key, value in node.items():
        if key != "$ref":
            out[key] = _resolve(value)
    return out


def _label(name: str) -> str:
    """``"max_frozen_s"`` -> ``"max frozen (s)"``, ``"final_value"`` -> ``"final value"``."""
    for suffix, unit in _UNITS.items():
        if name.endswith(suffix):
            return f"{name.removesuffix(suffix).replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def _parameter(name: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    """One parameter of a kind of check, as the editor renders its field."""
    out: dict[str, Any] = {
        "name": name,
        "label": _label(name),
        "required": required,
        "help": schema.get("description", ""),
    }
    if name == "stage":  # parsing's cross-field rule: it names a stage of the same spec
        out["refers_to"] = "stages"
    if "enum" in schema:
        out["input"] = "choice"
        out["options"] = list(schema["enum"])
    elif schema.get("type") == "array":
        out["input"] = "list"
        out["help"] = out["help"] or schema.get("items", {}).get("description", "")
        out["item_pattern"] = schema.get("items", {}).get("pattern")
    elif schema.get("type") in ("number", "integer"):
        out["input"] = schema["type"]
        for bound in ("minimum", "maximum", "exclusiveMinimum"):
            if bound in schema:
                out[bound] = schema[bound]
    else:
        out["input"] = "text"
        out["pattern"] = schema.get("pattern")
        out["max_length"] = schema.get("maxLength")
    return out


@functools.cache
def check_kinds() -> list[dict[str, Any]]:
    """The kinds of automatic check the SDK knows, in the schema's order, each with its
    parameters: ``[{"type", "label", "description", "parameters": [{"name", "label",
    "required", "help", "input": "number" | "integer" | "choice" | "list" | "text", ...}]}]``.
    The criteria editor renders a check's fields from this."""
    kinds = []
    for kind in CRITERIA_SCHEMA["$defs"]["check"]["properties"]["type"]["enum"]:
        if kind not in CHECK_CLASSES:  # the schema names a kind the SDK cannot run
            continue
        definition = _resolve(CRITERIA_SCHEMA["$defs"][kind])
        required = set(definition.get("required", ()))
        kinds.append(
            {
                "type": kind,
                "label": _label(kind),
                "description": definition.get("description", ""),
                "parameters": [
                    _parameter(name, schema, name in required)
                    for name, schema in definition["properties"].items()
                    if name not in _COMMON_CHECK_KEYS
                ],
            }
        )
    return kinds


def _as_openapi_30(node: Any) -> Any:
    """A resolved JSON Schema 2020-12 node in the dialect OpenAPI 3.0 speaks: ``const`` as a
    one-value ``enum``, numeric ``exclusiveMinimum`` as ``minimum`` plus the boolean, no
    ``$schema``/``$id``/``$defs``."""
    if isinstance(node, list):
        return [_as_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$schema", "$id", "$defs"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        else:
            out[key] = _as_openapi_30(value)
    return out


@functools.cache
def openapi_criteria_schema() -> dict[str, Any]:
    """The criteria document's schema for the OpenAPI 3.0 document. The checks' ``if``/``then``
    chain on ``type`` becomes a ``oneOf`` of the kinds (each kind's ``type`` is a one-value
    enum, so exactly one matches). Cross-field rules (unique ids, references, weights summing
    to 1) are not expressible in it; the description says so, as the SDK's does."""
    schema = copy.deepcopy(CRITERIA_SCHEMA)
    kinds = [kind["type"] for kind in check_kinds()]
    schema["properties"]["checks"]["items"] = {
        "oneOf": [_resolve({"$ref": f"#/$defs/{kind}"}) for kind in kinds]
    }
    return _as_openapi_30(_resolve(schema))
