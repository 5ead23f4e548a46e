"""The request-parsing pieces every route module shares: Docker's query booleans and the
JSON-object bodies, each failure an ``InvalidArgument`` (400) that names the field."""

from __future__ import annotations

import json

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from aiohttp import web


def query_bool(text: str | None, default: bool = False) -> bool:
    """Docker's query booleans: "", "0", "false" and "no" are false; absent is ``default``."""
    if text is None:
        return default
    return text.strip().lower() not in ("", "0", "false", "no")


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (empty: ``{}``)."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: want an object")
    return body


async def read_object(request: web.Request) -> dict[str, Any]:
    return json_object(await request.read())


def string_map(body: dict, key: str) -> dict[str, str]:
    """``body[key]`` as an object of strings (absent or null: ``{}``)."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise InvalidArgument(f"invalid {key}: want an object of strings")
    return value
