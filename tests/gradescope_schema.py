"""Validate a results.json against tests/gradescope_results.schema.json (Gradescope's documented format).

A small validator for the part of JSON Schema the file uses (type, enum, required, properties,
additionalProperties: false, items, minimum), so the tests need no extra package.
"""
import json
from pathlib import Path

SCHEMA = json.loads(Path(__file__).with_name("gradescope_results.schema.json").read_text(encoding="utf-8"))
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}


def errors(value, schema=SCHEMA, where="$") -> list[str]:
    """Every way `value` breaks `schema`, as 'path: problem' lines (empty: valid)."""
    found = []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(isinstance(value, TYPES[k]) and not (k in ("number", "integer") and isinstance(value, bool))
                   for k in kinds):
            return [f"{where}: {type(value).__name__} is not {' or '.join(kinds)}"]
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        found += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                found += errors(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{where}: unexpected key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(item, schema["items"], f"{where}[{i}]")
    return found


def assert_valid(result: dict) -> None:
    problems = errors(result)
    assert not problems, "results.json does not follow Gradescope's schema:\n" + "\n".join(problems[:20])
