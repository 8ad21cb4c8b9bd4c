"""The `http` partner: a partner institution reached by POSTing each order, signed, to the URL
the tenant configured for it (SPEC §11).

The request is what a Standard Webhooks receiver expects, so a partner verifies it with any
of the standard's libraries and its `whsec_` secret (shown to the tenant once, when the
partner was created):

- headers `webhook-id` (the order's public id `ord_...`: the same on every send of the
  order, so the partner deduplicates by it), `webhook-timestamp` (Unix seconds of this send)
  and `webhook-signature` (`v1,<base64 HMAC-SHA256>` over `id.timestamp.body`, computed by
  the `standardwebhooks` package), `content-type: application/json`;
- a JSON body (`OrderBody`): the order's public id and those of its partner, orchestration,
  bucket and customer, `amount` in minor units, `currency`, and `account_reference` (the
  customer's account at the partner, or null). At most `request_bytes_max` bytes.

The answer, of which at most `response_bytes_max` bytes are read:

| the partner answers                            | the send                               |
|------------------------------------------------|----------------------------------------|
| 2xx with `{"partner_reference": "..."}`        | `PartnerReceipt`                       |
| 4xx other than 408 and 429                     | `PartnerRejected`: the body's `code`   |
|                                                | (1 to 32 of `A-Za-z0-9_.-`), else      |
|                                                | `http_<status>`                        |
| 408, 429, 5xx, another status, a 2xx without a | `PartnerUnavailable`: the order may    |
| reference, no answer within the timeout, a     | have arrived; sending it again is safe |
| connection that fails, a refused destination   |                                        |

Where the URL may point is not decided here (rails know nothing of the gateway's address
policy): a `Resolver` passed in checks the URL at every send, because DNS answers change, and
gives the address to connect to; the gateway's resolver applies the webhook policy (https and
public addresses only in production). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import httpx
import msgspec

from ledger.invariants import ensure
from rails.collections.notifications import sign_body, webhook_for
from rails.partners.partner import (
    PartnerAdapter,
    PartnerOrder,
    PartnerReceipt,
    PartnerRejected,
    PartnerUnavailable,
    partner_reference_length_max,
    rejection_code_length_max,
)

timeout_ms_default = 10_000
milliseconds_per_second = 1_000
request_bytes_max = 8_192
response_bytes_max = 16_384
description_length_max = 500
user_agent = "Kovra-Partners/1"
# The prefixes of the public ids an order shows the partner (as the API shows them).
order_prefix = "ord"
partner_prefix = "ptn"
orchestration_prefix = "orc"
bucket_prefix = "bkt"
customer_prefix = "cus"
_code_pattern = re.compile(rf"[A-Za-z0-9_.-]{{1,{rejection_code_length_max}}}")
_status_request_timeout = 408
_status_too_many_requests = 429


class DestinationRefused(Exception):
    """The URL may not be called from here (a resolver says why)."""


class PartnerTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where a send goes, as a resolver checked it: the URL to connect to and, when that URL
    names the checked address in place of the host, the host for the Host header and the
    TLS server name (so a second DNS answer cannot slip past the check)."""

    connect_url: str
    host_header: str | None = None
    server_name: str | None = None


# Checks a partner's URL and answers where to connect; raises `DestinationRefused`.
Resolver = Callable[[str], Awaitable[PartnerTarget]]
# An id's public form: (prefix, 128-bit id) -> `prefix_...`, as the API writes it.
PublicId = Callable[[str, int], str]


class OrderBody(msgspec.Struct, frozen=True, kw_only=True):
    """The order as the partner receives it."""

    id: str
    object: str = "partner_order"
    partner_id: str
    orchestration_id: str
    bucket_id: str
    customer_id: str
    amount: int
    currency: str
    account_reference: str | None


class _Accepted(msgspec.Struct, frozen=True):
    """A 2xx answer: the partner's own id of the payment (other fields are ignored)."""

    partner_reference: Annotated[
        str, msgspec.Meta(min_length=1, max_length=partner_reference_length_max)
    ]


class _Refusal(msgspec.Struct, frozen=True):
    """A 4xx answer's reason, when the partner gives one."""

    code: Any = None
    description: Any = None


_accepted_decoder = msgspec.json.Decoder(_Accepted)
_refusal_decoder = msgspec.json.Decoder(_Refusal)
_encoder = msgspec.json.Encoder()


def order_body(order: PartnerOrder, public_id: PublicId) -> bytes:
    """The request body of an order: its JSON, within `request_bytes_max`."""
    body = _encoder.encode(
        OrderBody(
            id=public_id(order_prefix, order.order_id),
            partner_id=public_id(partner_prefix, order.partner_id),
            orchestration_id=public_id(orchestration_prefix, order.orchestration_id),
            bucket_id=public_id(bucket_prefix, order.bucket_id),
            customer_id=public_id(customer_prefix, order.customer_id),
            amount=order.amount_minor,
            currency=order.currency,
            account_reference=order.account_reference,
        )
    )
    ensure(len(body) <= request_bytes_max, f"an order's body is at most {request_bytes_max} bytes")
    return body


class HttpPartner:
    """A `Partner` reached over HTTP at one URL, signing with one secret."""

    def __init__(
        self,
        *,
        partner_id: int,
        url: str,
        secret: str,
        resolver: Resolver,
        client: httpx.AsyncClient,
        public_id: PublicId,
        timeout_ms: int = timeout_ms_default,
        clock: Callable[[], float] = time.time,
    ) -> None:
        ensure(partner_id > 0, "an http partner is a partner of Kovra's")
        ensure(timeout_ms > 0, "a partner's timeout is positive")
        webhook_for(secret)  # A malformed secret fails here, at construction, not per send.
        self._partner_id = partner_id
        self._url = url
        self._secret = secret
        self._resolver = resolver
        self._client = client
        self._public_id = public_id
        self._timeout_s = timeout_ms / milliseconds_per_second
        self._clock = clock

    @property
    def adapter(self) -> PartnerAdapter:
        return "http"

    async def send(self, order: PartnerOrder) -> PartnerReceipt:
        """The partner's receipt for the order; `PartnerRejected` or `PartnerUnavailable` as
        its answer (or silence) says."""
        ensure(order.partner_id == self._partner_id, "an order goes to the partner it names")
        body = order_body(order, self._public_id)
        try:
            async with asyncio.timeout(self._timeout_s):
                target = await self._resolver(self._url)
                status, answer = await self._post(order, target, body)
        except DestinationRefused as refusal:
            raise PartnerUnavailable(f"the partner's URL may not be called: {refusal}") from None
        except TimeoutError:
            raise PartnerUnavailable(f"no answer within {self._timeout_s:g} s") from None
        except (httpx.HTTPError, OSError) as failure:
            raise PartnerUnavailable(f"{type(failure).__name__}: {failure}"[:500]) from failure
        return _outcome(order, status, answer, accepted_at=self._now())

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self._clock(), tz=datetime.UTC)

    async def _post(
        self, order: PartnerOrder, target: PartnerTarget, body: bytes
    ) -> tuple[int, bytes]:
        """One signed POST: the status and at most `response_bytes_max` of the answer."""
        headers = sign_body(
            secret=self._secret,
            message_id=self._public_id(order_prefix, order.order_id),
            timestamp_seconds=int(self._clock()),
            body=body,
        )
        headers["user-agent"] = user_agent
        extensions: dict[str, str] = {}
        if target.host_header is not None:
            headers["host"] = target.host_header
        if target.server_name is not None:
            extensions["sni_hostname"] = target.server_name
        request = self._client.build_request(
            "POST", target.connect_url, content=body, headers=headers, extensions=extensions
        )
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            return response.status_code, await _read_bounded(response)
        finally:
            await response.aclose()


async def _read_bounded(response: httpx.Response) -> bytes:
    """The answer's first `response_bytes_max` bytes (the rest is not read): a partner's
    endless answer must not hold the send."""
    chunks: list[bytes] = []
    read = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk[: response_bytes_max - read])
        read += len(chunks[-1])
        if read >= response_bytes_max:
            break
    return b"".join(chunks)


def _outcome(
    order: PartnerOrder, status: int, answer: bytes, *, accepted_at: datetime.datetime
) -> PartnerReceipt:
    """The receipt a 2xx carries, or the error the status says."""
    if 200 <= status < 300:
        try:
            accepted = _accepted_decoder.decode(answer)
        except msgspec.DecodeError:
            raise PartnerUnavailable(
                f"the partner answered {status} without a partner_reference"
            ) from None
        return PartnerReceipt(
            order_id=order.order_id,
            partner_reference=accepted.partner_reference,
            accepted_at=accepted_at,
        )
    if 400 <= status < 500 and status not in (
        _status_request_timeout,
        _status_too_many_requests,
    ):
        code, description = _refusal(answer)
        detail = description or f"the partner answered {status}"
        raise PartnerRejected(code or f"http_{status}", detail)
    raise PartnerUnavailable(f"the partner answered {status}")


def _refusal(answer: bytes) -> tuple[str | None, str | None]:
    """The code and description a refusal's body gives, each only when well formed."""
    try:
        refusal = _refusal_decoder.decode(answer)
    except msgspec.DecodeError:
        return None, None
    code = refusal.code if isinstance(refusal.code, str) else None
    if code is not None and _code_pattern.fullmatch(code) is None:
        code = None
    description = refusal.description if isinstance(refusal.description, str) else None
    return code, None if description is None else description[:description_length_max]
