"""The embedded ledger's journal makes `EmbeddedClient` durable and restarts exact.

A client reopened on its journal answers every lookup, balance and query exactly as before,
remembers failed ids and expired pending transfers, and keeps timestamps moving forward; a torn
tail is cut off while a damaged record in the middle or a foreign file stops the start; and a
process killed with SIGKILL loses no acknowledged transfer and applies none twice.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import tigerbeetle as tb

from ledger.clients import EmbeddedClient, batch_size_max
from ledger.embedded.journal import JournalCorrupt, journal_magic
from tests.conftest import fresh_id
from tests.ledger.conformance.helpers import (
    AF,
    TF,
    T,
    account_filter,
    open_accounts,
    query_filter,
    statuses,
    transfer,
)

repo_root = Path(__file__).resolve().parents[3]
u128_max = (1 << 128) - 1
u64_max = (1 << 64) - 1
ns_per_s = 1_000_000_000


# ------------------------------------------------------------------------------------------
# Restarts.


@dataclass
class Snapshot:
    accounts: list[tb.Account]
    transfers: list[tb.Transfer]
    balances: list[list[tb.AccountBalance]]
    account_transfers: list[list[tb.Transfer]]
    queried_accounts: list[tb.Account]
    queried_transfers: list[tb.Transfer]


async def _snapshot(
    client: EmbeddedClient, account_ids: list[int], transfer_ids: list[int]
) -> Snapshot:
    return Snapshot(
        accounts=await client.lookup_accounts(account_ids),
        transfers=await client.lookup_transfers(transfer_ids),
        balances=[
            await client.get_account_balances(account_filter(a, limit=batch_size_max))
            for a in account_ids
        ],
        account_transfers=[
            await client.get_account_transfers(account_filter(a, limit=batch_size_max))
            for a in account_ids
        ],
        queried_accounts=await client.query_accounts(query_filter(limit=batch_size_max)),
        queried_transfers=await client.query_transfers(query_filter(limit=batch_size_max)),
    )


def _latest_timestamp(snapshot: Snapshot) -> int:
    return max([a.timestamp for a in snapshot.accounts] + [t.timestamp for t in snapshot.transfers])


@dataclass
class History:
    """What `_write_history` wrote: accounts, and transfers created or failed in every way
    the journal must remember."""

    wallet: int
    funding: int
    fees: int
    account_ids: list[int]
    created: list[tb.Transfer]
    transfer_ids: list[int]
    deposit: tb.Transfer
    held: tb.Transfer
    post: tb.Transfer
    chain: list[tb.Transfer]
    broken_chain: list[tb.Transfer]
    overdraft: tb.Transfer
    orphan: tb.Transfer


async def _write_history(client: EmbeddedClient) -> History:
    wallet, funding, fees = await open_accounts(
        client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY, AF.NONE, AF.HISTORY
    )
    (usd,) = await open_accounts(client, AF.NONE, ledger=840)
    deposit = transfer(funding, wallet, 1_000, user_data_128=7, user_data_64=8, user_data_32=9)
    held = transfer(wallet, fees, 100, flags=TF.PENDING, timeout=3_600)
    to_post = transfer(wallet, fees, 200, flags=TF.PENDING)
    to_void = transfer(wallet, fees, 50, flags=TF.PENDING, timeout=600)
    assert await statuses(client, [deposit, held, to_post, to_void]) == [T.CREATED] * 4
    post = transfer(
        0, 0, 150, ledger=0, code=0, pending_id=to_post.id, flags=TF.POST_PENDING_TRANSFER
    )
    void = transfer(
        0, 0, 0, ledger=0, code=0, pending_id=to_void.id, flags=TF.VOID_PENDING_TRANSFER
    )
    chain = [
        transfer(wallet, fees, 10, flags=TF.LINKED),
        transfer(wallet, fees, 20, flags=TF.LINKED),
        transfer(wallet, fees, 30),
    ]
    broken_chain = [
        transfer(wallet, fees, 1, flags=TF.LINKED),
        transfer(wallet, fees, 1, flags=TF.PENDING | TF.LINKED, timeout=5),
        transfer(wallet, fees, 1_000_000),  # exceeds_credits: the whole chain fails.
    ]
    overdraft = transfer(wallet, fees, 1_000_000)  # A transient failure: its id is burned.
    orphan = transfer(fresh_id(), fees, 1)  # debit_account_not_found, transient too.
    invalid = transfer(wallet, usd, 1)  # accounts_must_have_the_same_ledger, not transient.
    assert await statuses(client, [post, void, *chain]) == [T.CREATED] * 5
    assert await statuses(client, [*broken_chain, overdraft, orphan, invalid]) == [
        T.LINKED_EVENT_FAILED,
        T.LINKED_EVENT_FAILED,
        T.EXCEEDS_CREDITS,
        T.EXCEEDS_CREDITS,
        T.DEBIT_ACCOUNT_NOT_FOUND,
        T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
    ]
    created = [deposit, held, to_post, to_void, post, void, *chain]
    failed = [*broken_chain, overdraft, orphan, invalid]
    return History(
        wallet=wallet,
        funding=funding,
        fees=fees,
        account_ids=[wallet, funding, fees, usd],
        created=created,
        transfer_ids=[t.id for t in [*created, *failed]],
        deposit=deposit,
        held=held,
        post=post,
        chain=chain,
        broken_chain=broken_chain,
        overdraft=overdraft,
        orphan=orphan,
    )


async def _assert_outcomes_remembered(client: EmbeddedClient, history: History) -> None:
    """Existing ids exist, transiently failed ids stay burned, and a non-transient failure
    may be retried once fixed."""
    assert await statuses(client, [history.deposit, history.post, *history.chain]) == [
        T.EXISTS,
        T.EXISTS,
        T.EXISTS,  # A retried chain: the first event exists, the rest fail as linked.
        T.LINKED_EVENT_FAILED,
        T.LINKED_EVENT_FAILED,
    ]
    burned = [history.overdraft, history.orphan, history.broken_chain[2]]
    assert await statuses(client, burned) == [T.ID_ALREADY_FAILED] * 3


async def test_a_reopened_client_answers_exactly_as_before(tmp_path: Path) -> None:
    journal = tmp_path / "ledger.journal"
    client = EmbeddedClient(journal)
    history = await _write_history(client)
    wallet, funding, fees = history.wallet, history.funding, history.fees
    account_ids, transfer_ids = history.account_ids, history.transfer_ids
    before = await _snapshot(client, account_ids, transfer_ids)
    assert [t.id for t in before.transfers] == [t.id for t in history.created]
    assert before.accounts[0].debits_pending == 100
    assert before.accounts[0].debits_posted == 150 + 60
    assert len(before.balances[0]) == len(history.created)  # Every one is the wallet's.
    await client.close()

    reopened = EmbeddedClient(journal)
    after = await _snapshot(reopened, account_ids, transfer_ids)
    assert after == before
    await _assert_outcomes_remembered(reopened, history)
    retried_chain = [*history.broken_chain[:2], transfer(wallet, fees, 1)]
    assert await statuses(reopened, retried_chain) == [T.CREATED] * 3
    newer = transfer(funding, wallet, 5)
    post_held = transfer(
        0, 0, u128_max, ledger=0, code=0, pending_id=history.held.id, flags=TF.POST_PENDING_TRANSFER
    )
    results = await reopened.create_transfers([newer, post_held])
    assert [r.status for r in results] == [T.CREATED, T.CREATED]
    assert min(r.timestamp for r in results) > _latest_timestamp(before)
    (new_account,) = await open_accounts(reopened, AF.NONE)
    (stored,) = await reopened.lookup_accounts([new_account])
    assert stored.timestamp > max(r.timestamp for r in results)
    later_ids = [*transfer_ids, retried_chain[2].id, newer.id, post_held.id]
    later = await _snapshot(reopened, [*account_ids, new_account], later_ids)
    await reopened.close()

    # What was written after a replay is appended where it belongs and survives as well.
    third = EmbeddedClient(journal)
    assert await _snapshot(third, [*account_ids, new_account], later_ids) == later
    await third.close()


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now_ns: int = 1_750_000_000 * ns_per_s) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * ns_per_s)


async def test_an_expiry_replays_identically(tmp_path: Path) -> None:
    journal = tmp_path / "ledger.journal"
    clock = FakeClock()
    start_ns = clock.now_ns
    client = EmbeddedClient(journal, clock_ns=clock)
    wallet, funding = await open_accounts(client, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)
    pending = transfer(wallet, funding, 60, flags=TF.PENDING, timeout=1)
    assert await statuses(client, [transfer(funding, wallet, 100), pending]) == [T.CREATED] * 2
    (held,) = await client.lookup_accounts([wallet])
    assert held.debits_pending == 60
    size_before_expiry = journal.stat().st_size
    clock.advance(2)
    (released,) = await client.lookup_accounts([wallet])  # Any request runs the expiry.
    assert released.debits_pending == 0
    assert journal.stat().st_size > size_before_expiry, "the expiry was not journaled"
    before = await _snapshot(client, [wallet, funding], [pending.id])
    await client.close()

    # Reopen at the original time: the expiry comes from the journal, not from the clock.
    for reopen_clock in (clock, FakeClock(start_ns)):
        reopened = EmbeddedClient(journal, clock_ns=reopen_clock)
        assert await _snapshot(reopened, [wallet, funding], [pending.id]) == before
        await reopened.close()
    reopened = EmbeddedClient(journal, clock_ns=clock)
    (account,) = await reopened.lookup_accounts([wallet])
    assert (account.debits_pending, account.debits_posted) == (0, 0)
    post = transfer(
        0, 0, 60, ledger=0, code=0, pending_id=pending.id, flags=TF.POST_PENDING_TRANSFER
    )
    void = transfer(
        0, 0, 0, ledger=0, code=0, pending_id=pending.id, flags=TF.VOID_PENDING_TRANSFER
    )
    assert await statuses(reopened, [post, void]) == [T.PENDING_TRANSFER_EXPIRED] * 2
    assert await statuses(reopened, [transfer(wallet, funding, 100)]) == [T.CREATED]
    await reopened.close()


async def test_a_pending_transfer_expires_after_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "ledger.journal"
    clock = FakeClock()
    client = EmbeddedClient(journal, clock_ns=clock)
    wallet, funding = await open_accounts(client, AF.NONE, AF.NONE)
    pending = transfer(wallet, funding, 60, flags=TF.PENDING, timeout=10)
    assert await statuses(client, [pending]) == [T.CREATED]
    await client.close()

    clock.advance(5)
    reopened = EmbeddedClient(journal, clock_ns=clock)
    (account,) = await reopened.lookup_accounts([wallet])
    assert account.debits_pending == 60
    clock.advance(6)
    (account,) = await reopened.lookup_accounts([wallet])
    assert account.debits_pending == 0
    await reopened.close()
    third = EmbeddedClient(journal, clock_ns=clock)
    (account,) = await third.lookup_accounts([wallet])
    assert account.debits_pending == 0
    await third.close()


# ------------------------------------------------------------------------------------------
# Torn tails and corruption.


@dataclass
class Written:
    """A journal of three transfers, with the file size after each record."""

    journal: Path
    debit: int
    credit: int
    transfers: list[tb.Transfer]
    sizes: list[int]  # sizes[0]: after the accounts; sizes[i]: after transfers[i - 1].


async def _write_three_transfers(tmp_path: Path) -> Written:
    journal = tmp_path / "ledger.journal"
    client = EmbeddedClient(journal)
    debit, credit = await open_accounts(client, AF.NONE, AF.NONE)
    sizes = [journal.stat().st_size]
    transfers = []
    for amount in (1, 2, 4):
        transfers.append(transfer(debit, credit, amount))
        assert await statuses(client, [transfers[-1]]) == [T.CREATED]
        sizes.append(journal.stat().st_size)
    await client.close()
    return Written(journal, debit, credit, transfers, sizes)


async def _credits_and_transfers(journal: Path, written: Written) -> tuple[int, list[int]]:
    client = EmbeddedClient(journal)
    (credit,) = await client.lookup_accounts([written.credit])
    found = await client.lookup_transfers([t.id for t in written.transfers])
    await client.close()
    return credit.credits_posted, [t.id for t in found]


@pytest.mark.parametrize("cut", [1, 3, 50, 127, 128 + 19])
async def test_a_torn_tail_is_cut_off(tmp_path: Path, cut: int) -> None:
    written = await _write_three_transfers(tmp_path)
    os.truncate(written.journal, written.sizes[-1] - cut)
    credited, found = await _credits_and_transfers(written.journal, written)
    assert (credited, found) == (1 + 2, [t.id for t in written.transfers[:2]])
    assert written.journal.stat().st_size == written.sizes[-2]

    # The journal goes on from the cut: new records land after the survivors.
    client = EmbeddedClient(written.journal)
    assert await statuses(client, [written.transfers[2]]) == [T.CREATED]
    await client.close()
    credited, found = await _credits_and_transfers(written.journal, written)
    assert (credited, found) == (1 + 2 + 4, [t.id for t in written.transfers])


@pytest.mark.parametrize("tail", [b"\x00", b"\x7f" * 7, b"\xff" * 19])
async def test_a_partial_header_is_cut_off(tmp_path: Path, tail: bytes) -> None:
    written = await _write_three_transfers(tmp_path)
    with written.journal.open("ab") as file:
        file.write(tail)
    credited, found = await _credits_and_transfers(written.journal, written)
    assert (credited, found) == (1 + 2 + 4, [t.id for t in written.transfers])
    assert written.journal.stat().st_size == written.sizes[-1]


async def test_a_last_record_failing_its_checksum_counts_as_torn(tmp_path: Path) -> None:
    written = await _write_three_transfers(tmp_path)
    data = bytearray(written.journal.read_bytes())
    data[-5] ^= 0x01
    written.journal.write_bytes(bytes(data))
    credited, found = await _credits_and_transfers(written.journal, written)
    assert (credited, found) == (1 + 2, [t.id for t in written.transfers[:2]])


# Offsets inside a record: crc32 (0-3), payload length (4-7), operation (8), padding (9-11),
# timestamp (12-19), then the payload (the 128-byte transfer).
record_offsets = {
    "crc": 0,
    "length-low-byte": 4,
    "length-high-byte": 7,
    "operation": 8,
    "padding": 10,
    "timestamp": 12,
    "payload-id": 20,
    "payload-amount": 20 + 48,
    "payload-last-byte": 20 + 127,
}


@pytest.mark.parametrize("offset", record_offsets.values(), ids=record_offsets.keys())
@pytest.mark.parametrize("record", [0, 1], ids=["first-transfer", "second-transfer"])
async def test_a_damaged_record_in_the_middle_is_corruption(
    tmp_path: Path, offset: int, record: int
) -> None:
    written = await _write_three_transfers(tmp_path)
    data = bytearray(written.journal.read_bytes())
    data[written.sizes[record] + offset] ^= 0x80
    written.journal.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        EmbeddedClient(written.journal)
    # A refused start leaves the evidence alone: nothing is truncated or rewritten.
    assert written.journal.read_bytes() == bytes(data)


async def test_damaged_accounts_record_is_corruption(tmp_path: Path) -> None:
    written = await _write_three_transfers(tmp_path)
    data = bytearray(written.journal.read_bytes())
    data[len(journal_magic) + 30] ^= 0x01
    written.journal.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        EmbeddedClient(written.journal)


@pytest.mark.parametrize(
    "content",
    [b"KOV", b"KOVRAJ02", b"not a journal at all", b"\x00" * 64, journal_magic[::-1] + b"x" * 40],
    ids=["short", "other-version", "text", "zeros", "reversed-magic"],
)
async def test_a_file_without_the_magic_is_refused(tmp_path: Path, content: bytes) -> None:
    journal = tmp_path / "ledger.journal"
    journal.write_bytes(content)
    with pytest.raises(JournalCorrupt):
        EmbeddedClient(journal)
    assert journal.read_bytes() == content


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_refused_journal_is_not_left_open(tmp_path: Path) -> None:
    journal = tmp_path / "ledger.journal"
    journal.write_bytes(b"not a journal at all")
    before = _open_descriptors()
    for _ in range(3):
        # Refused for what it is, every time: an earlier refusal holds nothing open.
        with pytest.raises(JournalCorrupt):
            EmbeddedClient(journal)
    assert _open_descriptors() == before
    journal.write_bytes(journal_magic)  # Repaired: the same process may now open it.
    client = EmbeddedClient(journal)
    await client.close()


async def test_a_new_journal_starts_with_the_magic(tmp_path: Path) -> None:
    journal = tmp_path / "nested" / "dir" / "ledger.journal"
    client = EmbeddedClient(journal)
    assert journal.read_bytes() == journal_magic
    await client.lookup_accounts([1])  # Reads are not journaled.
    assert journal.read_bytes() == journal_magic
    await client.close()
    assert (journal.stat().st_mode & 0o777) == 0o600


# ------------------------------------------------------------------------------------------
# Crash safety with a real process.

crash_script = textwrap.dedent(
    """
    import asyncio
    import sys

    import tigerbeetle as tb

    from ledger.clients import EmbeddedClient


    async def main(path: str) -> None:
        client = EmbeddedClient(path)
        results = await client.create_accounts(
            [tb.Account(id=1, ledger=978, code=1), tb.Account(id=2, ledger=978, code=1)]
        )
        ok = {tb.CreateAccountStatus.CREATED, tb.CreateAccountStatus.EXISTS}
        if any(result.status not in ok for result in results):
            raise SystemExit(f"accounts: {results}")
        while True:
            transfer_id = tb.id()
            (result,) = await client.create_transfers(
                [
                    tb.Transfer(
                        id=transfer_id,
                        debit_account_id=1,
                        credit_account_id=2,
                        amount=1,
                        ledger=978,
                        code=1,
                    )
                ]
            )
            if result.status != tb.CreateTransferStatus.CREATED:
                raise SystemExit(f"transfer: {result}")
            print(transfer_id, flush=True)


    asyncio.run(main(sys.argv[1]))
    """
)
crash_debit_account, crash_credit_account = 1, 2


def _run_and_kill(script: Path, journal: Path, wanted: int, timeout_s: float) -> list[int]:
    """Run `script` until it acknowledged `wanted` transfers, SIGKILL it, return every id
    it acknowledged (including those still in the pipe when it died)."""
    environment = {**os.environ, "PYTHONPATH": str(repo_root)}
    with subprocess.Popen(
        [sys.executable, str(script), str(journal)],
        cwd=repo_root,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            fd = process.stdout.fileno()
            output = b""
            deadline = time.monotonic() + timeout_s
            while (acks := output.count(b"\n")) < wanted:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"only {acks} acks within {timeout_s}s"
                readable, _, _ = select.select([fd], [], [], remaining)
                if not readable:
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    process.wait(timeout=10)
                    stderr = process.stderr.read().decode(errors="replace")
                    pytest.fail(f"the writer exited early ({process.returncode}): {stderr}")
                output += chunk
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert process.returncode == -signal.SIGKILL
            output += process.stdout.read()  # Acks already in the pipe when it died.
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    complete = output[: output.rfind(b"\n") + 1]
    return [int(line) for line in complete.splitlines()]


async def _all_credits(client: EmbeddedClient, account_id: int) -> list[tb.Transfer]:
    """Every transfer crediting `account_id`, paging past the query limit."""
    found: list[tb.Transfer] = []
    while True:
        page = await client.get_account_transfers(
            account_filter(
                account_id,
                limit=batch_size_max,
                flags=tb.AccountFilterFlags.CREDITS,
                timestamp_min=found[-1].timestamp + 1 if found else 0,
            )
        )
        found.extend(page)
        if len(page) < batch_size_max:
            return found


async def test_a_killed_process_loses_no_acknowledged_transfer(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(crash_script)
    journal = tmp_path / "ledger.journal"
    acknowledged: list[int] = []
    for _ in range(3):
        acknowledged += await asyncio.to_thread(_run_and_kill, script, journal, 200, 20.0)
        assert len(set(acknowledged)) == len(acknowledged)

        client = EmbeddedClient(journal)
        try:
            found = await client.lookup_transfers(acknowledged)
            assert [t.id for t in found] == acknowledged, "an acknowledged transfer was lost"
            credited = await _all_credits(client, crash_credit_account)
            ids = [t.id for t in credited]
            assert len(set(ids)) == len(ids)
            assert set(acknowledged) <= set(ids)
            debit, credit = await client.lookup_accounts(
                [crash_debit_account, crash_credit_account]
            )
            # Nothing lost, nothing applied twice: the balance is the count of transfers.
            assert credit.credits_posted == len(credited) == sum(t.amount for t in credited)
            assert debit.debits_posted == len(credited)
        finally:
            await client.close()
