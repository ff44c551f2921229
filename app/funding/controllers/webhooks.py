"""`POST /api/funding/webhooks/{provider}`: payment providers' signed events.

The body is verified exactly as received (Standard Webhooks, `app.funding.webhooks.verify`) with
the provider's secret: a forged or unsigned delivery is a 401, a stale or malformed one a 400; both
are kept in the inbox unverified (never processed) when they carry an id, so support can see the
attempt. A verified event is recorded once by its id and processed once
(`deposit_events.process_event`); a repeat answers 200 `already_processed`. An unknown payment
answers 200 `unknown_payment` (see `app.funding.deposit_events`); a handler error answers 500 so
the provider retries, while our own sweep retries too.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from litestar import Request, Response, post

from app.funding import deposit_events, webhooks

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
_STALE = {"too_old", "too_new", "bad_timestamp", "missing_header", "bad_id"}


def _answer(status: int, **body: Any) -> Response:
    return Response(content=body, status_code=status, media_type="application/json")


@post(
    "/funding/webhooks/{provider:str}",
    status_code=200,
    request_max_body_size=MAX_BODY,
    include_in_schema=False,
)
async def receive_webhook(request: Request, provider: str) -> Response:
    secret = deposit_events.webhook_secret(provider)
    if secret is None:
        return _answer(404, error="no webhook endpoint for this provider")
    body = await request.body()
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    event_type = str(payload.get("type", ""))[:100] if isinstance(payload, dict) else ""
    try:
        verified = webhooks.verify(secret, request.headers, body)
    except webhooks.WebhookRejected as exc:
        msg_id = request.headers.get("webhook-id", "").strip()
        if msg_id and len(msg_id) <= webhooks.MAX_ID_LENGTH and payload is not None:
            await webhooks.record_event(provider, msg_id, event_type, payload, signature_ok=False)
        log.warning("webhook %s refused: %s", provider, exc)
        status = 400 if exc.reason in _STALE else 401
        return _answer(status, error="stale or malformed delivery" if status == 400 else "bad signature")
    if not isinstance(payload, dict) or not event_type:
        return _answer(400, error="the body must be a JSON event with a type")
    await webhooks.record_event(provider, verified.msg_id, event_type, payload)
    outcome = await deposit_events.process_event(provider, verified.msg_id)
    if outcome == "failed":
        return _answer(500, outcome=outcome)
    return _answer(200, outcome=outcome)


PORTAL: tuple[Any, ...] = ()
STAFF: tuple[Any, ...] = ()
API: tuple[Any, ...] = (receive_webhook,)
