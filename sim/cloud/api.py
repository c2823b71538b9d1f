"""``POST /``: the iss API pipeline, in the order the cloud checks things.

method → body size → TC3 signature (expected Host = the emulator's own endpoint) → token →
Content-Type → version → action → region → rate limit → injected fault → JSON body → parameter
schema → handler (in a store transaction) → envelope. Every answer the API gives is HTTP 200
with ``Content-Type: application/json`` exactly (the SDK ignores errors otherwise), except an
injected ``http_status`` fault or a dropped connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.iss import SERVICE
from gateway.iss.envelope import CONTENT_TYPE, dumps, failure, new_request_id, success
from gateway.iss.errors import IssError
from gateway.iss.request import parse_params, version_and_action
from gateway.iss.signing import verify_request

from .actions.context import ActionContext
from .dispatch import ACTIONS, REGIONS, ActionSpec, Route
from .faults import Fault
from .schema import validate
from .state import EMULATOR_STATE, CallRecord, EmulatorState, ForwardedCall, redact

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # spec README 3.2: POST with signature v3 ≤ 10 MB
DISCARD_CHUNK_BYTES = 1024 * 1024
HTTP_FAULT_BODY = b"<html><body><h1>503 Service Unavailable</h1></body></html>"


@dataclass
class CallInProgress:
    """What the call log will say about the current request."""

    request_id: str
    action: str
    at: float
    secret_id: str | None = None
    fault: Fault | None = None
    params: dict[str, Any] | None = field(default=None)
    close_connection: bool = False


class _HttpFault(Exception):
    """An injected ``http_status`` fault: answer with that status instead of an iss envelope."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def envelope_response(envelope: dict[str, Any]) -> web.Response:
    return web.Response(body=dumps(envelope), headers={"Content-Type": CONTENT_TYPE})


async def handle_api_request(request: web.Request) -> web.StreamResponse:
    """Answer one iss call and log it."""
    state = request.app[EMULATOR_STATE]
    call = CallInProgress(new_request_id(), request.headers.get("X-TC-Action", ""), state.clock())
    code = "OK"
    try:
        result = await _process(state, request, call)
        response: web.StreamResponse = envelope_response(success(result, call.request_id))
    except IssError as error:
        code = error.code
        response = envelope_response(failure(error, call.request_id))
    except _HttpFault as fault:
        code = f"HTTP {fault.status}"
        response = web.Response(status=fault.status, body=HTTP_FAULT_BODY, content_type="text/html")
    except Exception:
        logger.exception("emulated action %s failed", call.action)
        code = "InternalError"
        response = envelope_response(failure(IssError("InternalError"), call.request_id))
    state.calls.append(
        CallRecord(
            action=call.action,
            code=code,
            at=call.at,
            request_id=call.request_id,
            secret_id=call.secret_id,
            fault=call.fault.kind if call.fault else None,
            params=redact(call.params) if call.params is not None else None,
        )
    )
    logger.debug("iss call %s -> %s (request %s)", call.action or "-", code, call.request_id)
    if call.fault is not None and call.fault.drop:
        if request.transport is not None:
            request.transport.close()
    elif call.close_connection:
        response.force_close()
    return response


async def _process(state: EmulatorState, request: web.Request, call: CallInProgress) -> dict[str, Any] | None:
    if request.method != "POST":
        raise IssError("UnsupportedProtocol", "Only POST with a JSON body is emulated.")
    body = await _read_body(request, call)
    caller = verify_request(
        method=request.method,
        headers=request.headers,
        body=body,
        query=request.query_string,
        keys=state.keys,
        now=state.clock(),
        expected_host=state.endpoint,
        service=SERVICE,
    )
    call.secret_id = caller.secret_id
    if request.headers.get("X-TC-Token"):
        raise IssError("AuthFailure.TokenFailure", "X-TC-Token must not be sent with a long-term key.")
    if request.content_type != "application/json":
        raise IssError("InvalidParameter", "Content-Type must be application/json (signature v3).")
    spec = _resolve_action(request, call.action)
    region = _check_region(request, spec)
    if not state.limiter.admit(call.action, caller.secret_id):
        raise IssError("RequestLimitExceeded")
    await _apply_fault(state, call)
    params = parse_params(body)
    call.params = params
    return await _dispatch(
        state,
        spec,
        ActionContext(state.store, state.clock(), region, caller.secret_id, call.action),
        params,
        call,
    )


async def _read_body(request: web.Request, call: CallInProgress) -> bytes:
    """The body, or ``RequestSizeLimitExceeded`` over 10 MB.

    An oversized body is read and discarded first so the answer follows the whole request
    (a client still sending would otherwise never see it), and the connection is then closed.
    """
    try:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length)
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        call.close_connection = True
        async for _ in request.content.iter_chunked(DISCARD_CHUNK_BYTES):
            pass
        raise IssError("RequestSizeLimitExceeded") from None


def _resolve_action(request: web.Request, action: str) -> ActionSpec:
    version_and_action(request.headers)
    spec = ACTIONS.get(action)
    if spec is None:
        raise IssError("InvalidAction", f"The action {action!r} does not exist.")
    return spec


def _check_region(request: web.Request, spec: ActionSpec) -> str | None:
    region = request.headers.get("X-TC-Region") or None
    if region is None:
        if spec.region_required:
            raise IssError("MissingParameter", "The Region (X-TC-Region) is required for this action.")
        return None
    if region not in REGIONS:
        raise IssError("UnsupportedRegion", f"Region {region!r} is not one of {sorted(REGIONS)}.")
    return region


async def _apply_fault(state: EmulatorState, call: CallInProgress) -> None:
    fault = state.faults.take(call.action)
    if fault is None:
        return
    call.fault = fault
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.http_status is not None:
        raise _HttpFault(fault.http_status)
    if fault.error is not None:
        raise IssError(fault.error, "Injected fault.")


async def _dispatch(
    state: EmulatorState, spec: ActionSpec, ctx: ActionContext, params: dict[str, Any], call: CallInProgress
) -> dict[str, Any] | None:
    if spec.route is Route.FORWARDED and state.forwarder is not None:
        forwarded = ForwardedCall(ctx.action, params, ctx.region, ctx.secret_id, call.request_id, state.store)
        return await state.forwarder(forwarded)
    if spec.route is not Route.EMULATED:
        raise IssError("UnsupportedOperation", f"{ctx.action} is not implemented by the cloud emulator.")
    assert spec.handler is not None and spec.schema is not None
    validate(spec.schema, params)
    if spec.prepare is not None:
        await spec.prepare(state, params)
    async with state.store.transaction():
        result = spec.handler(ctx, params)
        if inspect.isawaitable(result):
            result = await result
    return result
