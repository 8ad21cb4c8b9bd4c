"""The `create_transfers` calls of one event-loop turn, sent as one ledger request.

Under load a gateway process has dozens of payouts in flight, each with its own small linked
chain. Sent one call per chain, every chain pays for its own request: validation, framing,
a timeout, a round trip and the ledger's own per-request cost. TigerBeetle's answer is the
batch: one request carries up to `batch_size_max` transfers, and independent chains side by
side in one request succeed or fail independently (a chain ends at the first transfer
without the `linked` flag). So every call made while the loop runs one turn joins a queue,
the queue goes out as one request (or several, never over `batch_size_max`), and each caller
gets back exactly the results of its own transfers, in its own order. This is what
TigerBeetle's own clients do with concurrent requests.

A transfer the client refuses before sending (a field out of range: a programmer's error)
sends each call of its request alone, so only its own caller fails. A call whose last
transfer is still `linked` (an open chain, which TigerBeetle refuses)
goes alone, so it can never swallow a neighbour's chain; so does a call too large to share.
Every other method passes straight through.
"""

from __future__ import annotations

import asyncio
from typing import Final

import tigerbeetle as tb

from ledger.clients.base import LedgerClient, batch_size_max
from ledger.invariants import InvariantViolation, ensure
from ledger.turn_batching import TurnBatcher

# A call this large gains nothing from company; it goes alone.
shared_call_size_max: Final = batch_size_max // 2


class _Call:
    __slots__ = ("future", "transfers")

    def __init__(
        self, transfers: list[tb.Transfer], future: asyncio.Future[list[tb.CreateTransferResult]]
    ) -> None:
        self.transfers = transfers
        self.future = future


class CoalescingClient:
    """A `LedgerClient` whose `create_transfers` calls of one loop turn share a request."""

    def __init__(self, client: LedgerClient) -> None:
        self._client = client
        # A turn's calls, weighed by their transfers: one request carries at most the batch
        # maximum, so a call that would overflow it sends the queue and starts the next.
        self._turn: TurnBatcher[_Call] = TurnBatcher(self._send_turn, weight_max=batch_size_max)
        self._sends: set[asyncio.Task[None]] = set()

    @property
    def backend(self) -> LedgerClient:
        """The client every call goes through."""
        return self._client

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        if (
            not transfers
            or len(transfers) > shared_call_size_max
            or int(transfers[-1].flags) & int(tb.TransferFlags.LINKED)
        ):
            return await self._client.create_transfers(transfers)
        future: asyncio.Future[list[tb.CreateTransferResult]] = (
            asyncio.get_running_loop().create_future()
        )
        self._turn.add(_Call(transfers, future), len(transfers))
        return await future

    def _send_turn(self, calls: list[_Call]) -> None:
        task = asyncio.get_running_loop().create_task(self._send(calls))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, calls: list[_Call]) -> None:
        merged = [transfer for call in calls for transfer in call.transfers]
        ensure(len(merged) <= batch_size_max, "a coalesced request fits one ledger request")
        try:
            results = await self._client.create_transfers(merged)
        except (ValueError, TypeError, InvariantViolation):
            # A transfer the client refused before sending anything (a field out of range:
            # tigerbeetle's IntegerOverflowError, which our TigerBeetle adapter reports as an
            # InvariantViolation): each call goes alone, so only the one at fault fails. Were
            # anything applied after all, the resend would find it by id (`exists`).
            await asyncio.gather(*(self._send_alone(call) for call in calls))
            return
        except BaseException as error:  # Every caller shares the request, and its failure.
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        ensure(len(results) == len(merged), "one result per transfer")
        start = 0
        for call in calls:
            end = start + len(call.transfers)
            if not call.future.done():  # Its caller may have been cancelled meanwhile.
                call.future.set_result(results[start:end])
            start = end

    async def _send_alone(self, call: _Call) -> None:
        try:
            results = await self._client.create_transfers(call.transfers)
        except Exception as error:
            if not call.future.done():
                call.future.set_exception(error)
            return
        if not call.future.done():
            call.future.set_result(results)

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        return await self._client.create_accounts(accounts)

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]:
        return await self._client.lookup_accounts(accounts)

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]:
        return await self._client.lookup_transfers(transfers)

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:  # noqa: A002
        return await self._client.get_account_transfers(filter)

    async def get_account_balances(
        self,
        filter: tb.AccountFilter,  # noqa: A002
    ) -> list[tb.AccountBalance]:
        return await self._client.get_account_balances(filter)

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        return await self._client.query_accounts(query_filter)

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        return await self._client.query_transfers(query_filter)

    async def close(self) -> None:
        """Send what is queued, wait for what is in flight, then close the client."""
        self._turn.flush_now()
        await asyncio.gather(*self._sends, return_exceptions=True)
        await self._client.close()
