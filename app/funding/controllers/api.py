"""The funding JSON API (`/api/v1/funding`) for the broker's own systems: API keys with scope
`funding:write` move money, `funding:read` reads it (`X-API-Key`, app.integrations).

Every request that moves money carries an `Idempotency-Key` (app.funding.idempotency): a replay
gets the first response (status and body, byte for byte, with `Idempotent-Replayed: true`); the
same key with another body is refused with 422 `idempotency_key_reused`. A body that does not
decode, or whose amount is not a valid amount of its currency, is refused before the key is
claimed (the same body always gets the same answer, and nothing is stored); the services'
refusals (rights, limits, funds) are stored with the key like any other response.

Errors have the leads API's shape: `{"error": code, "detail": text, "fields": {field: text}}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import ResponseHeader
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter

from app.core.audit import Actor
from app.core.errors import FormErrors
from app.core.web import client_ip
from app.funding import api_schemas as schemas
from app.funding import client_transfers, deposit_events, deposits, idempotency, transfers, withdrawals
from app.funding.idempotency import IdempotencyError, Reply
from app.funding.providers.base import ProviderError
from app.integrations.services import ApiKeyError, AuthenticatedKey, authenticate
from app.kyc.levels import RightDenied
from app.leads.api import error_response, error_spec, on_bad_body, on_key_error
from app.settings import get_settings

log = logging.getLogger(__name__)

PORTAL: tuple[Any, ...] = ()
STAFF: tuple[Any, ...] = ()

IdempotencyKey = Annotated[
    str,
    Parameter(
        header=idempotency.HEADER,
        min_length=1,
        max_length=idempotency.MAX_KEY,
        description=(
            "A unique key per operation (e.g. a UUID), 1-200 printable ASCII characters. Sending the same "
            "request again with the same key returns the first response and moves no money; the same key "
            "with a different request is refused (422 `idempotency_key_reused`). Keys are per API key."
        ),
    ),
]


# --- authentication and errors ----------------------------------------------------------------


async def funding_write_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """The key (401/403) first, then the Idempotency-Key (400): before the body is even read."""
    connection.state.api_key = await authenticate(connection.headers.get("x-api-key"), "funding:write")
    connection.state.idempotency_key = idempotency.check_key(connection.headers.get(idempotency.HEADER))


async def funding_read_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    connection.state.api_key = await authenticate(connection.headers.get("x-api-key"), "funding:read")


def on_idempotency_error(_: Request, exc: IdempotencyError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return error_response(exc.code, exc.status, exc.detail, headers=headers)


def on_invalid(_: Request, exc: FormErrors) -> Response:
    return error_response("invalid_fields", 422, "Some fields are missing or invalid.", exc.errors)


def on_not_found(_: Request, exc: NotFoundException) -> Response:
    return error_response("not_found", 404, str(exc.detail or "Not found.").capitalize() + ".")


def on_client_error(request: Request, exc: ClientException) -> Response:
    """Body problems in the leads API's words; other 4xx (too large …) keep their own status."""
    if isinstance(exc, ValidationException) or exc.status_code == 400:
        return on_bad_body(request, exc)
    return error_response("request_refused", exc.status_code, str(exc.detail or "The request was refused."))


def on_server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response("server_error", 500, "Something went wrong; retry with the same Idempotency-Key.")


_KEY_ERRORS = {
    401: error_spec("Missing, unknown or revoked API key", "invalid_api_key", "This API key is not valid."),
    403: error_spec(
        "The key lacks the scope (or the client lacks the KYC right)",
        "insufficient_scope",
        "This API key may not be used for funding:write.",
    ),
    404: error_spec("No such client or record", "not_found", "Client not found."),
    429: error_spec(
        "Over the key's per-minute limit (see Retry-After)", "rate_limited", "Try again shortly."
    ),
}
_WRITE_ERRORS = {
    **_KEY_ERRORS,
    400: error_spec(
        "Missing or malformed Idempotency-Key, malformed JSON or an unknown field",
        "idempotency_key_missing",
        "Send a unique Idempotency-Key header (e.g. a UUID) with every request that moves money.",
    ),
    409: error_spec(
        "A request with this Idempotency-Key is still in progress (see Retry-After)",
        "request_in_progress",
        "A request with this Idempotency-Key is still being processed; retry shortly to get its response.",
    ),
    422: error_spec(
        "Invalid values, a refusal (funds, limits), or the Idempotency-Key reused for another request",
        "invalid_fields",
        "Some fields are missing or invalid.",
        {"amount": "USD amounts have at most 2 decimals: 10.005 has more."},
    ),
}
_REPLAYED = ResponseHeader(
    name=idempotency.REPLAYED_HEADER,
    description="`true` when this is the stored response to an earlier request with the same Idempotency-Key.",
    documentation_only=True,
    required=False,
)
_EXCEPTIONS: dict[Any, Any] = {
    ApiKeyError: on_key_error,
    IdempotencyError: on_idempotency_error,
    FormErrors: on_invalid,
    NotFoundException: on_not_found,
    404: on_not_found,
    ClientException: on_client_error,
    Exception: on_server_error,
}


def _reply(status: int, body: msgspec.Struct | dict[str, Any]) -> Reply:
    return Reply(status, msgspec.json.encode(body))


def _refusal(code: str, status: int, detail: str, fields: dict[str, str] | None = None) -> Reply:
    return _reply(status, {"error": code, "detail": detail, "fields": fields or {}})


async def _answer(call: Callable[[], Awaitable[Reply]]) -> Reply:
    """The service's answer, its refusals turned into error bodies (which are stored with the key)."""
    try:
        return await call()
    except withdrawals.WithdrawalRefused as exc:
        return _refusal("withdrawal_refused", 422, " ".join(exc.messages), {})
    except RightDenied as exc:
        return _refusal("right_denied", 403, exc.message, {})
    except FormErrors as exc:
        detail = next(iter(exc.errors.values()), "The request was refused.")
        return _refusal("invalid_fields", 422, detail, exc.errors)
    except NotFoundException as exc:
        return _refusal("not_found", 404, str(exc.detail or "Not found.").capitalize() + ".")


async def _idempotent(
    request: Request, data: msgspec.Struct, call: Callable[[], Awaitable[Reply]]
) -> Response:
    key: AuthenticatedKey = request.state.api_key
    reply = await idempotency.run(
        f"apikey:{key.id}",
        request.state.idempotency_key,
        request.method,
        request.url.path,
        msgspec.to_builtins(data),
        lambda: _answer(call),
    )
    headers = dict(reply.headers)
    if reply.replayed:
        headers[idempotency.REPLAYED_HEADER] = "true"
    return Response(content=reply.body, status_code=reply.status, media_type=MediaType.JSON, headers=headers)


def _service_key(request: Request) -> str:
    return idempotency.service_key(f"apikey:{request.state.api_key.id}", request.state.idempotency_key)


def _actor(request: Request) -> Actor:
    key: AuthenticatedKey = request.state.api_key
    return key.actor(client_ip(request), request.headers.get("user-agent", "")[:400])


# --- handlers ---------------------------------------------------------------------------------


class FundingApi(Controller):
    path = "/v1/funding"
    tags = ["Funding"]
    security = [{"ApiKey": []}]
    exception_handlers = _EXCEPTIONS

    @post(
        "/clients/{client_id:int}/deposits",
        status_code=201,
        guards=[funding_write_guard],
        summary="Start a deposit",
        description=(
            "Creates a deposit for the client by one of the payment methods offered to them. Card and "
            "e-wallet deposits return a `redirect_url` to the provider's hosted payment page; the wallet is "
            "credited when the provider confirms. Scope `funding:write`; requires `Idempotency-Key`."
        ),
        response_headers=[_REPLAYED],
        responses=_WRITE_ERRORS,
    )
    async def create_deposit(
        self, request: Request, client_id: int, data: schemas.DepositIn, idempotency_key: IdempotencyKey
    ) -> Response[schemas.DepositOut]:
        amount, currency = schemas.amount_of(data.amount, data.currency)
        schemas.check_return_url(data.return_url)
        await schemas.require_client(client_id)
        actor, key = _actor(request), _service_key(request)

        async def call() -> Reply:
            row = await deposits.create_deposit(
                actor,
                client_id,
                data.method_id,
                amount,
                currency,
                credit_currency=data.credit_currency,
                idempotency_key=key,
            )
            redirect_url = None
            if row["kind"] in deposit_events.CARD_KINDS and row["status"] == "created":
                return_url = data.return_url or f"{get_settings().base_url}/portal/deposits/{row['id']}"
                customer = await schemas.customer_of(client_id)
                try:  # the provider dedups on the deposit's reference: a rerun opens no second payment
                    redirect_url = await deposit_events.start_card_payment(actor, row, return_url, customer)
                except ProviderError as exc:  # 5xx: not stored, the same key retries (same deposit)
                    return _refusal("provider_unavailable", 502, exc.message)
            return _reply(201, schemas.deposit_out(row, redirect_url))

        return await _idempotent(request, data, call)

    @post(
        "/clients/{client_id:int}/withdrawals",
        status_code=201,
        guards=[funding_write_guard],
        summary="Request a withdrawal",
        description=(
            "Requests a withdrawal from the client's wallet (or a trading account) to one of the client's "
            "withdrawal destinations (`GET /clients/{client_id}/withdrawal-destinations`). The amount is held "
            "at once; finance approves it before it is paid. A pre-check that blocks it (balance, KYC level, "
            "return-to-source, open questionnaire) is a 422 `withdrawal_refused` saying why. Scope "
            "`funding:write`; requires `Idempotency-Key`."
        ),
        response_headers=[_REPLAYED],
        responses=_WRITE_ERRORS,
    )
    async def create_withdrawal(
        self, request: Request, client_id: int, data: schemas.WithdrawalIn, idempotency_key: IdempotencyKey
    ) -> Response[schemas.WithdrawalOut]:
        amount, currency = schemas.amount_of(data.amount, data.currency)
        await schemas.require_client(client_id)
        actor, key = _actor(request), _service_key(request)

        async def call() -> Reply:
            row = await withdrawals.request_withdrawal(
                actor,
                client_id,
                source=data.source,
                amount=amount,
                currency=currency,
                destination=data.destination,
                trading_account_id=data.trading_account_id,
                idempotency_key=key,
            )
            return _reply(201, schemas.withdrawal_out(row))

        return await _idempotent(request, data, call)

    @post(
        "/clients/{client_id:int}/transfers",
        status_code=201,
        guards=[funding_write_guard],
        summary="Transfer between the wallet and trading accounts, or to another client",
        description=(
            "`wallet_to_account` (`to_account_id`), `account_to_wallet` (`from_account_id`), "
            "`account_to_account` (both) move the client's money through MT5: the transfer is `pending` "
            "until MT5 confirms, then `done` or `failed` (the money is back where it was). "
            "`client_to_client` (`to_client_id`) holds the amount and waits for finance's approval "
            "(`awaiting_approval`). Scope `funding:write`; requires `Idempotency-Key`."
        ),
        response_headers=[_REPLAYED],
        responses=_WRITE_ERRORS,
    )
    async def create_transfer(
        self, request: Request, client_id: int, data: schemas.TransferIn, idempotency_key: IdempotencyKey
    ) -> Response[schemas.TransferOut]:
        amount, currency = schemas.amount_of(data.amount, data.currency)
        schemas.check_transfer_shape(data)
        await schemas.require_client(client_id)
        actor, key = _actor(request), _service_key(request)

        async def call() -> Reply:
            row: dict[str, Any]
            if data.kind == "wallet_to_account":
                assert data.to_account_id is not None
                row = await transfers.wallet_to_account(
                    actor, client_id, data.to_account_id, amount, key, currency=currency
                )
            elif data.kind == "account_to_wallet":
                assert data.from_account_id is not None
                row = await transfers.account_to_wallet(
                    actor, client_id, data.from_account_id, amount, key, currency=currency
                )
            elif data.kind == "account_to_account":
                assert data.from_account_id is not None and data.to_account_id is not None
                row = await transfers.account_to_account(
                    actor, client_id, data.from_account_id, data.to_account_id, amount, key, currency=currency
                )
            else:
                assert data.to_client_id is not None
                email = await schemas.email_of(data.to_client_id)
                row = await client_transfers.request(
                    actor, client_id, currency, amount, email, str(data.to_client_id), key, note=data.note
                )
            return _reply(201, schemas.transfer_out(row))

        return await _idempotent(request, data, call)

    @get(
        "/clients/{client_id:int}/withdrawal-destinations",
        guards=[funding_read_guard],
        summary="Where the client may withdraw to",
        description="The `key`s to send as a withdrawal's `destination`, for one currency (cards first).",
        responses=_KEY_ERRORS,
    )
    async def withdrawal_destinations(
        self,
        client_id: int,
        currency: Annotated[str, Parameter(query="currency", min_length=3, max_length=8)],
    ) -> schemas.DestinationsOut:
        return await schemas.destinations_of(client_id, currency)

    @get(
        "/clients/{client_id:int}/wallets",
        guards=[funding_read_guard],
        summary="The client's wallets",
        description="Balances per currency: `available` (withdrawable), `held` (pending withdrawals), `balance`.",
        responses=_KEY_ERRORS,
    )
    async def wallets(self, client_id: int) -> schemas.WalletsOut:
        return await schemas.wallets_of(client_id)

    @get(
        "/deposits/{deposit_id:int}", guards=[funding_read_guard], summary="A deposit", responses=_KEY_ERRORS
    )
    async def deposit(self, deposit_id: int) -> schemas.DepositOut:
        return schemas.deposit_out(await deposits.get_deposit(deposit_id))

    @get(
        "/withdrawals/{withdrawal_id:int}",
        guards=[funding_read_guard],
        summary="A withdrawal",
        responses=_KEY_ERRORS,
    )
    async def withdrawal(self, withdrawal_id: int) -> schemas.WithdrawalOut:
        return schemas.withdrawal_out(await withdrawals.get_withdrawal(withdrawal_id))

    @get(
        "/transfers/{transfer_id:int}",
        guards=[funding_read_guard],
        summary="A transfer",
        responses=_KEY_ERRORS,
    )
    async def transfer(self, transfer_id: int) -> schemas.TransferOut:
        return schemas.transfer_out(await transfers.get_transfer(transfer_id))


API: tuple[Any, ...] = (FundingApi,)
