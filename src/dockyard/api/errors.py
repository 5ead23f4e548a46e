"""Errors in Docker's shape: ``{"message": "..."}`` with the status the error class names.

Why a middleware: handlers raise ``DockyardError`` (or let the services raise it) and never build
error responses themselves, so every endpoint answers failures the same way docker does.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.api")


def json_response(data: object, status: int = 200) -> web.Response:
    """JSON as dockerd sends it: compact, ``Content-Type: application/json`` exactly (the docker
    CLI compares the header verbatim; aiohttp's ``json_response`` would add a charset)."""
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except DockyardError as e:
        if e.http_status >= 500:
            log.error("%s %s: %s", request.method, request.path, e)
        return error_response(e.http_status, str(e))
    except json.JSONDecodeError as e:
        return error_response(400, f"invalid JSON: {e}")
    except web.HTTPNotFound:
        return error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "method not allowed")
    except web.HTTPException:
        raise
    except ConnectionError:  # the client went away mid-response: nobody to answer
        raise
    except Exception as e:  # noqa: BLE001 - a bug must still answer in docker's shape
        log.exception("%s %s", request.method, request.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}")
