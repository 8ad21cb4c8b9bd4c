"""The http partner against a real partner server on a loopback port: an order is POSTed as
JSON with Standard Webhooks headers that the `standardwebhooks` package verifies, its
`webhook-id` the order's public id on every send (so the partner pays it once and answers
the same reference); a 2xx with a `partner_reference` is the receipt; a 4xx other than 408
and 429 is a rejection with the partner's code (or `http_<status>`); 408, 429, 5xx, a 2xx
without a reference, an answer larger than Kovra reads, a redirect (not followed), silence
past the timeout and a refused connection are `PartnerUnavailable`; the resolver passed in
decides where the order goes (refused: nothing is sent; pinned: the URL's host stays in the
Host header)."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.http.ids import encode_id
from gateway.webhooks.signing import new_secret
from ledger.invariants import InvariantViolation
from rails.partners.http import DestinationRefused, HttpPartner, PartnerTarget
from rails.partners.partner import (
    PartnerOrder,
    PartnerRejected,
    PartnerUnavailable,
)
from tests.rails.partners.partner_server import PartnerServer, hang, huge, redirect

partner_id = 0x0190_0000_0000_7000_8000_0000_0000_0001
secret = new_secret()


def order(number: int = 1, *, for_partner: int = partner_id) -> PartnerOrder:
    return PartnerOrder(
        order_id=0x0190_0000_0000_7000_9000_0000_0000_0000 + number,
        tenant_id=7,
        partner_id=for_partner,
        orchestration_id=0x0190_0000_0000_7000_A000_0000_0000_0001,
        bucket_id=0x0190_0000_0000_7000_B000_0000_0000_0001,
        customer_id=0x0190_0000_0000_7000_C000_0000_0000_0001,
        currency="EUR",
        amount_minor=12_345,
        account_reference="NL91ABNA0417164300",
    )


async def direct(url: str) -> PartnerTarget:
    return PartnerTarget(connect_url=url)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as made:
        yield made


def partner(
    client: httpx.AsyncClient,
    url: str,
    *,
    timeout_ms: int = 5_000,
    resolver: object = direct,
    signing_secret: str = secret,
) -> HttpPartner:
    return HttpPartner(
        partner_id=partner_id,
        url=url,
        secret=signing_secret,
        resolver=resolver,  # type: ignore[arg-type]
        client=client,
        public_id=encode_id,
        timeout_ms=timeout_ms,
    )


async def test_an_order_is_posted_signed_and_its_receipt_is_the_partners(
    client: httpx.AsyncClient,
) -> None:
    with PartnerServer(secret=secret) as server:
        before = int(time.time())
        receipt = await partner(client, server.url).send(order())
        after = time.time()
        (received,) = server.snapshot()
    assert (receipt.order_id, receipt.partner_reference) == (order().order_id, "PAY-1")
    assert before <= receipt.accepted_at.timestamp() <= after
    assert receipt.accepted_at.tzinfo is datetime.UTC
    # The partner's own check, with the package's five minutes' tolerance of the timestamp.
    assert received.verified, "the standardwebhooks package verifies the signature"
    assert received.path == "/orders"
    assert received.headers["webhook-id"] == encode_id("ord", order().order_id)
    assert before <= int(received.headers["webhook-timestamp"]) <= after
    assert received.headers["content-type"] == "application/json"
    assert json.loads(received.body) == {
        "id": encode_id("ord", order().order_id),
        "object": "partner_order",
        "partner_id": encode_id("ptn", partner_id),
        "orchestration_id": encode_id("orc", order().orchestration_id),
        "bucket_id": encode_id("bkt", order().bucket_id),
        "customer_id": encode_id("cus", order().customer_id),
        "amount": 12_345,
        "currency": "EUR",
        "account_reference": "NL91ABNA0417164300",
    }


async def test_an_order_sent_again_has_the_same_id_and_is_paid_once(
    client: httpx.AsyncClient,
) -> None:
    with PartnerServer(secret=secret) as server:
        sender = partner(client, server.url)
        first, again = await sender.send(order(1)), await sender.send(order(1))
        other = await sender.send(order(2))
        ids = [r.headers["webhook-id"] for r in server.snapshot()]
        paid = dict(server.paid)
    assert first.partner_reference == again.partner_reference == "PAY-1"
    assert other.partner_reference == "PAY-2"
    assert ids[0] == ids[1] != ids[2]
    assert len(paid) == 2


async def test_a_signature_under_another_secret_is_refused_by_the_partner(
    client: httpx.AsyncClient,
) -> None:
    with PartnerServer(secret=secret) as server:
        with pytest.raises(PartnerRejected) as raised:
            await partner(client, server.url, signing_secret=new_secret()).send(order())
        assert not server.snapshot()[0].verified
    assert raised.value.code == "bad_signature"
    assert not server.paid


@pytest.mark.parametrize(
    ("answer", "code", "description"),
    [
        ((422, {"code": "account_closed", "description": "closed in 2025"}), "account_closed",
         "closed in 2025"),
        ((404, None), "http_404", "the partner answered 404"),
        ((400, {"code": "not a code"}), "http_400", "the partner answered 400"),
        ((409, {"code": "x" * 33}), "http_409", "the partner answered 409"),
        ((403, [1, 2]), "http_403", "the partner answered 403"),
    ],
)  # fmt: skip
async def test_a_4xx_is_a_rejection_with_the_partners_code_or_the_status(
    client: httpx.AsyncClient, answer: tuple[int, object], code: str, description: str
) -> None:
    with (
        PartnerServer(secret=secret, answers=[answer]) as server,
        pytest.raises(PartnerRejected) as raised,
    ):
        await partner(client, server.url).send(order())
    assert (raised.value.code, raised.value.description) == (code, description)


@pytest.mark.parametrize(
    "answer",
    [
        (408, {"code": "slow"}),
        (429, {"code": "busy"}),
        (500, None),
        (503, {"code": "down"}),
        (200, {"ok": True}),
        (201, {"partner_reference": ""}),
        (204, None),
        huge,
        redirect,
    ],
)
async def test_what_is_not_an_answer_is_unavailable(
    client: httpx.AsyncClient, answer: tuple[int, object] | str
) -> None:
    with PartnerServer(secret=secret, answers=[answer]) as server:
        with pytest.raises(PartnerUnavailable):
            await partner(client, server.url).send(order())
        assert len(server.snapshot()) == 1, "a redirect is not followed"


async def test_a_silent_partner_is_unavailable_at_the_timeout(client: httpx.AsyncClient) -> None:
    with PartnerServer(secret=secret, answers=[hang]) as server:
        with pytest.raises(PartnerUnavailable, match=r"no answer within 0\.3 s"):
            await partner(client, server.url, timeout_ms=300).send(order())
        server.release()
        assert len(server.snapshot()) == 1


async def test_a_refused_connection_is_unavailable(client: httpx.AsyncClient) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(PartnerUnavailable, match="ConnectError"):
        await partner(client, f"http://127.0.0.1:{port}/orders").send(order())


async def test_a_refused_destination_sends_nothing(client: httpx.AsyncClient) -> None:
    async def refusing(url: str) -> PartnerTarget:
        raise DestinationRefused(f"{url} resolves to 127.0.0.1, which is not a public address")

    with PartnerServer(secret=secret) as server:
        with pytest.raises(PartnerUnavailable, match="not a public address"):
            await partner(client, server.url, resolver=refusing).send(order())
        assert server.snapshot() == []


async def test_a_pinned_destination_keeps_the_urls_host_in_the_host_header(
    client: httpx.AsyncClient,
) -> None:
    with PartnerServer(secret=secret) as server:

        async def pinned(url: str) -> PartnerTarget:
            assert url == "http://partner.example:8080/orders"
            return PartnerTarget(connect_url=server.url, host_header="partner.example:8080")

        await partner(client, "http://partner.example:8080/orders", resolver=pinned).send(order())
        (received,) = server.snapshot()
    assert received.headers["host"] == "partner.example:8080"
    assert received.verified


async def test_a_malformed_secret_or_another_partners_order_is_a_programmer_error(
    client: httpx.AsyncClient,
) -> None:
    for malformed in ("whsec_", "secret", "whsec_" + "A" * 8):
        with pytest.raises(ValueError, match="secret"):
            partner(client, "http://127.0.0.1:9/orders", signing_secret=malformed)
    with pytest.raises(InvariantViolation):
        await partner(client, "http://127.0.0.1:9/orders").send(order(for_partner=partner_id + 1))


async def test_concurrent_sends_each_get_their_own_receipt(client: httpx.AsyncClient) -> None:
    with PartnerServer(secret=secret) as server:
        sender = partner(client, server.url)
        receipts = await asyncio.gather(*(sender.send(order(n)) for n in range(1, 11)))
        paid = dict(server.paid)
    assert len({r.partner_reference for r in receipts}) == 10
    assert {r.order_id for r in receipts} == {order(n).order_id for n in range(1, 11)}
    assert len(paid) == 10
