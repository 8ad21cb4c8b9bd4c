"""Transfers end to end through `kovra serve --workers 2` and `kovra worker`: quote, pay,
and follow the lifecycle of SPEC §6 on the sandbox rails for five corridors, rejections
refunded to the minor unit (the statement naming the transfer), no-answer retried until
completed, cancellation, immediate refusals that create and hold nothing, a retry after a
failed write counted against the daily limit once, a refused write without an
Idempotency-Key that gives the hold, the count and the quote back at once, a keyed retry
refused once the reconciler released its hold, and concurrent transfers that never
overdraw."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from gateway.http.ids import decode_id
from gateway.jobs.reconciler import reconcile_reservations
from gateway.jobs.worker import reconciliation
from gateway.runtime import open_runtime
from gateway.settings import load_settings
from loadtest.provisioning import recipients
from rails.iso20022 import parse_pacs002, validate
from tests.gateway.e2e.conftest import Deployment, bearer, run_sql

final_statuses = {"completed", "refunded", "cancelled", "blocked"}
deposits = {"EUR": 10_000_000, "GBP": 10_000_000, "USD": 10_000_000, "IDR": 1_000_000_000_000}
liquidity = {"EUR": 10**12, "GBP": 10**12, "USD": 10**12, "IDR": 10**16}


class Payer:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.tenant_id, self.key = deployment.tenant(tier="enterprise")
        for currency, amount in deposits.items():
            deployment.deposit(self.key, currency, amount)
        self.recipients: dict[str, str] = {}

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.deployment.base_url}{path}", json=body, headers=bearer(self.key), timeout=30
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.deployment.base_url}{path}", headers=bearer(self.key), timeout=30)

    def recipient(self, currency: str) -> str:
        if currency not in self.recipients:
            created = self.post("/v1/recipients", recipients[currency])
            assert created.status_code == 201, created.text
            self.recipients[currency] = created.json()["id"]
        return self.recipients[currency]

    def quote(self, source: str, target: str, source_amount: int) -> dict[str, Any]:
        created = self.post(
            "/v1/quotes",
            {"source_currency": source, "target_currency": target, "source_amount": source_amount},
        )
        assert created.status_code == 201, created.text
        quote: dict[str, Any] = created.json()
        return quote

    def pay(self, source: str, target: str, amount: int, reference: str) -> httpx.Response:
        quote = self.quote(source, target, amount)
        return self.post(
            "/v1/transfers",
            {
                "quote_id": quote["id"],
                "recipient_id": self.recipient(target),
                "reference": reference,
            },
        )

    def settle(self, transfer_id: str, seconds: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            transfer: dict[str, Any] = self.get(f"/v1/transfers/{transfer_id}").json()
            if transfer["status"] in final_statuses:
                return transfer
            assert time.monotonic() < deadline, f"still {transfer['status']}"
            time.sleep(0.1)

    def balance(self, currency: str) -> dict[str, int]:
        data = self.get("/v1/balances").json()["data"]
        found: dict[str, int] = next(b for b in data if b["currency"] == currency)
        return found


@pytest.fixture(scope="module")
def payer(deployment: Deployment) -> Payer:
    deployment.fund_liquidity(liquidity)
    return Payer(deployment)


@pytest.mark.parametrize(
    ("source", "target", "amount"),
    [
        ("EUR", "IDR", 100_000),
        ("GBP", "EUR", 50_000),
        ("EUR", "EUR", 25_000),
        ("IDR", "GBP", 500_000_000),
        ("USD", "IDR", 75_000),
    ],
)
def test_a_transfer_completes_and_moves_money_once(
    payer: Payer, source: str, target: str, amount: int
) -> None:
    before = payer.balance(source)["posted"]
    created = payer.pay(source, target, amount, f"INV-{source}-{target}")
    assert created.status_code == 201, created.text
    transfer = created.json()
    assert transfer["status"] == "processing"
    # Held at once; the worker may already have completed it (the sandbox answers fast).
    assert payer.balance(source)["pending"] in (amount + transfer["fee"]["amount"], 0)
    done = payer.settle(transfer["id"])
    assert done["status"] == "completed", done
    after = payer.balance(source)
    assert after["posted"] == before - amount - transfer["fee"]["amount"]
    assert after["pending"] == 0
    messages = payer.get(f"/v1/transfers/{transfer['id']}/messages").json()["data"]
    assert [(m["type"], m["direction"]) for m in messages] == [
        ("pacs.008", "outbound"),
        ("pacs.002", "inbound"),
    ]
    validate(messages[0]["xml"].encode(), "pacs.008.001.08.xsd")
    (status,) = parse_pacs002(messages[1]["xml"].encode())
    assert status.status == "accepted"


def test_a_rejection_is_refunded_to_the_minor_unit(payer: Payer) -> None:
    before = payer.balance("EUR")
    created = payer.pay("EUR", "IDR", 123_457, "sandbox:reject:AC04")
    assert created.status_code == 201, created.text
    done = payer.settle(created.json()["id"])
    assert (done["status"], done["failure_code"]) == ("refunded", "AC04")
    assert payer.balance("EUR") == before
    # The wallet's statement names the transfer behind the hold and its release.
    statement = payer.get("/v1/statements?currency=EUR&limit=1000").json()["data"]
    lines = {(e["type"], e["status"]) for e in statement if e["object_id"] == done["id"]}
    assert {("payout_source", "pending"), ("payout_source", "voiding")} <= lines


def test_no_answer_is_retried_until_completed(payer: Payer) -> None:
    created = payer.pay("GBP", "GBP", 9_999, "sandbox:timeout:2")
    assert created.status_code == 201, created.text
    done = payer.settle(created.json()["id"])
    assert done["status"] == "completed"
    messages = payer.get(f"/v1/transfers/{done['id']}/messages").json()["data"]
    assert [(m["type"], m["attempt"]) for m in messages] == [
        ("pacs.008", 1),
        ("pacs.008", 2),
        ("pacs.008", 3),
        ("pacs.002", 3),
    ]
    events = asyncio.run(_event_types(payer.deployment, done["id"]))
    assert events == [
        "transfer.processing",
        "transfer.submitted",
        "transfer.pending_rail",
        "transfer.submitted",
        "transfer.pending_rail",
        "transfer.submitted",
        "transfer.completed",
    ]


async def _event_types(deployment: Deployment, transfer_id: str) -> list[str]:
    """The transfer's outbox events, in the order they were written."""
    connection = await asyncpg.connect(deployment.database_url)
    try:
        rows = await connection.fetch(
            "SELECT type FROM events WHERE object_id = $1 ORDER BY created_at, type",
            uuid.UUID(int=decode_id("tr", transfer_id)),
        )
        return [row["type"] for row in rows]
    finally:
        await connection.close()


def test_refusals_create_and_hold_nothing(payer: Payer) -> None:
    before = payer.get("/v1/transfers?limit=100").json()["data"]
    balance = payer.balance("EUR")
    too_much = payer.pay("EUR", "IDR", balance["available"] + 1, "too much")
    assert too_much.status_code == 422
    assert too_much.json()["code"] == "insufficient_funds"
    quote = payer.quote("EUR", "EUR", 100)
    unknown = payer.post(
        "/v1/transfers",
        {"quote_id": quote["id"], "recipient_id": "rcp_" + "0" * 25 + "1", "reference": "x"},
    )
    assert unknown.json()["code"] == "unknown_recipient"
    wrong = payer.post(
        "/v1/transfers",
        {"quote_id": quote["id"], "recipient_id": payer.recipient("GBP"), "reference": "x"},
    )
    assert wrong.json()["code"] == "recipient_currency_mismatch"
    used = payer.post(
        "/v1/transfers",
        {"quote_id": quote["id"], "recipient_id": payer.recipient("EUR"), "reference": "first use"},
    )
    assert used.status_code == 201, used.text  # The refused attempts left the quote unused.
    again = payer.post(
        "/v1/transfers",
        {
            "quote_id": quote["id"],
            "recipient_id": payer.recipient("EUR"),
            "reference": "second use",
        },
    )
    assert again.json()["code"] == "quote_already_used"
    # A quote worth more than any daily count can hold (the fuzzer's find: it was a 500).
    huge = payer.quote("EUR", "EUR", 10**17)
    over = payer.post(
        "/v1/transfers",
        {"quote_id": huge["id"], "recipient_id": payer.recipient("EUR"), "reference": "huge"},
    )
    assert (over.status_code, over.json()["code"]) == (422, "daily_limit_exceeded"), over.text
    after = payer.get("/v1/transfers?limit=100").json()["data"]
    assert len(after) == len(before) + 1
    payer.settle(used.json()["id"])
    assert payer.balance("EUR")["pending"] == 0


def _stale_usd_sek(payer: Payer) -> tuple[str, dict[str, str]]:
    """Make the USD/SEK rate stale; the rates endpoint and admin headers to restore it."""
    rates = f"{payer.deployment.base_url}/admin/v1/fx-rates"
    admin = payer.deployment.admin()
    stale = {"rates": {"USD/SEK": "10.65"}, "observed_at": "2020-01-01T00:00:00Z"}
    assert httpx.put(rates, headers=admin, json=stale).status_code == 200
    return rates, admin


def test_a_quote_locks_its_usd_equivalent_so_a_stale_rate_cannot_refuse_it(
    payer: Payer,
) -> None:
    """The daily limit counts the quote's USD equivalent, priced with the quote: the USD
    rate going stale afterwards does not stop the tenant paying a quote it holds."""
    payer.deployment.deposit(payer.key, "SEK", 1_000_000)
    quote = payer.quote("SEK", "EUR", 10_000)
    body = {"quote_id": quote["id"], "recipient_id": payer.recipient("EUR"), "reference": "x"}
    rates, admin = _stale_usd_sek(payer)
    try:
        paid = payer.post("/v1/transfers", body)
    finally:
        httpx.put(rates, headers=admin, json={"rates": {"USD/SEK": "10.65"}})
    assert paid.status_code == 201, paid.text
    assert payer.settle(paid.json()["id"])["status"] == "completed"


def test_a_recipient_missing_from_redis_is_read_from_postgres(payer: Payer) -> None:
    """The recipient's record in Redis lapsed (or Redis lost it): the transfer reads the
    recipient from Postgres, publishes it again, and goes through."""
    recipient = payer.recipient("EUR")
    store = redis.Redis.from_url(payer.deployment.environment["REDIS_URL"])
    key = f"kovra:recipient:{payer.tenant_id}:{decode_id('rcp', recipient):032x}"
    assert store.delete(key) == 1
    quote = payer.quote("EUR", "EUR", 1_000)
    paid = payer.post(
        "/v1/transfers",
        {"quote_id": quote["id"], "recipient_id": recipient, "reference": "republished"},
    )
    assert paid.status_code == 201, paid.text
    assert store.exists(key) == 1


def test_an_earlier_versions_quote_is_valued_now_and_given_back_on_a_stale_rate(
    payer: Payer,
) -> None:
    """A quote stored before quotes recorded their USD equivalent is valued at the current
    rate when paid; with that rate stale the transfer is refused and the quote given back."""
    payer.deployment.deposit(payer.key, "SEK", 1_000_000)
    quote = payer.quote("SEK", "EUR", 10_000)
    store = redis.Redis.from_url(payer.deployment.environment["REDIS_URL"])
    key = f"kovra:quote:{payer.tenant_id}:{decode_id('quote', quote['id']):032x}"
    stored = json.loads(store.hget(key, "quote") or b"{}")
    assert stored.pop("usd_equivalent_minor") > 0
    store.hset(key, "quote", json.dumps(stored))
    body = {"quote_id": quote["id"], "recipient_id": payer.recipient("EUR"), "reference": "x"}
    rates, admin = _stale_usd_sek(payer)
    try:
        refused = payer.post("/v1/transfers", body)
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "rate_stale"
        assert payer.balance("SEK")["pending"] == 0
    finally:
        httpx.put(rates, headers=admin, json={"rates": {"USD/SEK": "10.65"}})
    paid = payer.post("/v1/transfers", body)  # The refusal gave the quote back.
    assert paid.status_code == 201, paid.text
    assert payer.settle(paid.json()["id"])["status"] == "completed"


_refuse_blip = """
CREATE FUNCTION kovra_test_blip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.reference = 'pg-blip' THEN RAISE EXCEPTION 'Postgres refuses, for a moment'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER kovra_test_blip BEFORE INSERT ON transfers
  FOR EACH ROW EXECUTE FUNCTION kovra_test_blip();
"""


class RefusedWrite:
    """A tenant with EUR 10,000.00, an EUR quote and recipient, and the first transfer's
    row refused by Postgres (a trigger on `transfers`, dropped right after) once the payout
    was counted and held. `days` holds each UTC day the count may have landed on."""

    def __init__(self, deployment: Deployment, *, name: str, key_header: bool) -> None:
        self.deployment = deployment
        self.tenant_id, self.key = deployment.tenant(name=name)
        deployment.deposit(self.key, "EUR", 1_000_000)
        self.headers = bearer(self.key)
        if key_header:
            self.headers["Idempotency-Key"] = f"blip-{uuid.uuid4().hex}"
        self.quote = deployment.created(
            "/v1/quotes",
            {"source_currency": "EUR", "target_currency": "EUR", "source_amount": 10_000},
            bearer(self.key),
        ).json()
        recipient = deployment.created("/v1/recipients", recipients["EUR"], bearer(self.key))
        self.body = {
            "quote_id": self.quote["id"],
            "recipient_id": recipient.json()["id"],
            "reference": "pg-blip",
        }
        self.days = {time.strftime("%Y%m%d", time.gmtime())}
        asyncio.run(run_sql(deployment.database_url, _refuse_blip))
        try:
            self.failed = self.pay()
        finally:
            asyncio.run(run_sql(deployment.database_url, "DROP FUNCTION kovra_test_blip CASCADE"))
        self.days.add(time.strftime("%Y%m%d", time.gmtime()))
        self.store = redis.Redis.from_url(deployment.environment["REDIS_URL"])

    def pay(self) -> httpx.Response:
        url = f"{self.deployment.base_url}/v1/transfers"
        return httpx.post(url, json=self.body, headers=self.headers, timeout=30)

    def counted_usd_minor(self) -> int:
        keys = [f"kovra:limit:day:{self.tenant_id}:{day}" for day in self.days]
        return sum(int(self.store.get(key) or 0) for key in keys)

    def wallet(self) -> tuple[int, int]:
        """The EUR wallet's available and pending amounts."""
        balances = httpx.get(
            f"{self.deployment.base_url}/v1/balances", headers=bearer(self.key), timeout=30
        ).json()["data"]
        (eur,) = [balance for balance in balances if balance["currency"] == "EUR"]
        return int(eur["available"]), int(eur["pending"])


def test_a_retry_after_a_failed_write_counts_the_daily_limit_once(
    deployment: Deployment,
) -> None:
    """Postgres refuses the transfer's row once, after the payout was counted against the
    daily limit and held; the retry with the same Idempotency-Key completes the transfer,
    and the day's volume holds the quote's USD equivalent once, not twice."""
    refused = RefusedWrite(deployment, name="blip", key_header=True)
    assert refused.failed.status_code == 500, refused.failed.text
    paid = refused.pay()
    assert paid.status_code == 201, paid.text
    quote_key = f"kovra:quote:{refused.tenant_id}:{decode_id('quote', refused.quote['id']):032x}"
    usd_minor = json.loads(refused.store.hget(quote_key, "quote") or b"{}")["usd_equivalent_minor"]
    assert refused.counted_usd_minor() == usd_minor > 0
    transfer = httpx.get(
        f"{deployment.base_url}/v1/transfers/{paid.json()['id']}", headers=bearer(refused.key)
    )
    assert transfer.json()["status"] in {"processing", "submitted", "completed"}


def test_a_refused_write_without_a_key_gives_everything_back(deployment: Deployment) -> None:
    """Postgres refuses the row of a transfer sent without an Idempotency-Key, after its
    payout was counted and held. No request can come back to that transfer's id, so the
    hold is voided, the count given back and the quote freed at once: the wallet is whole,
    the day's volume is zero, and the same quote pays a transfer when Postgres accepts."""
    refused = RefusedWrite(deployment, name="blip-unkeyed", key_header=False)
    assert refused.failed.status_code == 500, refused.failed.text
    assert refused.wallet() == (1_000_000, 0)
    assert refused.counted_usd_minor() == 0
    paid = refused.pay()
    assert paid.status_code == 201, paid.text
    assert refused.counted_usd_minor() > 0


def test_a_retry_after_the_reconciler_released_the_hold_is_refused(
    deployment: Deployment,
) -> None:
    """A keyed transfer whose row Postgres refused keeps its hold for the retry. When none
    comes within the reconciler's delay, the reconciler claims the transfer's id with an
    `abandoned` row, voids the hold and gives the count and the quote back. A retry after
    that finds the ledger transfers in place (voided) and is refused with
    `transfer_abandoned` instead of being recorded against money no longer held: the wallet
    stays whole, nothing stays counted, no transfer is listed, and the quote pays under a
    new key."""
    refused = RefusedWrite(deployment, name="blip-late", key_header=True)
    assert refused.failed.status_code == 500, refused.failed.text
    assert refused.wallet() == (990_000, 10_000)
    time.sleep(1.2)  # Older than the reconciler's delay below.
    assert asyncio.run(_reconcile_now(deployment)) >= 1
    assert refused.wallet() == (1_000_000, 0)
    assert refused.counted_usd_minor() == 0  # The reconciler gave the count back.
    quote_key = f"kovra:quote:{refused.tenant_id}:{decode_id('quote', refused.quote['id']):032x}"
    assert refused.store.hget(quote_key, "used_by") is None  # And the quote.
    late = refused.pay()
    assert late.status_code == 409, late.text
    assert late.json()["code"] == "transfer_abandoned"
    assert refused.wallet() == (1_000_000, 0)
    assert refused.counted_usd_minor() == 0
    listed = httpx.get(
        f"{deployment.base_url}/v1/transfers", headers=bearer(refused.key), timeout=30
    )
    assert listed.json()["data"] == []
    refused.headers["Idempotency-Key"] = f"blip-{uuid.uuid4().hex}"
    paid = refused.pay()
    assert paid.status_code == 201, paid.text
    assert refused.wallet()[0] == 990_000  # Held, or already paid out by the worker.


async def _reconcile_now(deployment: Deployment) -> int:
    """One pass of the reservation reconciler, as `kovra worker` runs it, with a delay of
    one second instead of thirty."""
    settings = load_settings({**deployment.environment, "KOVRA_RECONCILE_AFTER_SECONDS": "1"})
    services = await open_runtime(settings)
    try:
        return await reconcile_reservations(reconciliation(services))
    finally:
        await services.close()


def test_cancel_before_submission_and_not_after(payer: Payer) -> None:
    completed = payer.pay("EUR", "EUR", 1_000, "to complete")
    done = payer.settle(completed.json()["id"])
    refused = payer.post(f"/v1/transfers/{done['id']}/cancel", {})
    assert refused.status_code == 409
    assert refused.json()["code"] == "transfer_not_cancellable"
    before = payer.balance("GBP")
    pending = payer.pay("GBP", "GBP", 2_000, "sandbox:timeout:1000")
    transfer = pending.json()
    # Racing the worker: either the cancel wins (cancelled) or the transfer was already
    # submitted (409). Both leave the ledger consistent; retry until the cancel is decided.
    cancelled = payer.post(f"/v1/transfers/{transfer['id']}/cancel", {})
    if cancelled.status_code == 200:
        assert cancelled.json()["status"] == "cancelled"
        assert payer.balance("GBP") == before
    else:
        assert cancelled.json()["code"] == "transfer_not_cancellable"


def test_concurrent_transfers_never_overdraw(deployment: Deployment, payer: Payer) -> None:
    poor = Payer.__new__(Payer)
    poor.deployment = deployment
    poor.tenant_id, poor.key = deployment.tenant(tier="growth")
    poor.recipients = {}
    deployment.deposit(poor.key, "EUR", 20_000)
    quotes = [poor.quote("EUR", "EUR", 1_000) for _ in range(30)]
    recipient = poor.recipient("EUR")

    async def pay_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=deployment.base_url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            "/v1/transfers",
                            headers=bearer(poor.key),
                            json={
                                "quote_id": q["id"],
                                "recipient_id": recipient,
                                "reference": f"c{i}",
                            },
                        )
                        for i, q in enumerate(quotes)
                    )
                )
            )

    responses = asyncio.run(pay_all())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 20
    assert {r.json()["code"] for r in responses if r.status_code != 201} == {"insufficient_funds"}
    for response in responses:
        if response.status_code == 201:
            assert poor.settle(response.json()["id"])["status"] == "completed"
    assert poor.balance("EUR") == {"currency": "EUR", "available": 0, "pending": 0, "posted": 0}
