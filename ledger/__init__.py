"""Kovra's ledger: the TigerBeetle account model, the clients and the money operations.

Every balance Kovra reports lives in TigerBeetle (or, on a developer machine, in the embedded
engine that mimics it). This package turns Kovra's domain operations (deposits, holds,
payouts, currency exchange) into TigerBeetle transfers and back.

The names below are what other packages use; the clients have their own surface in
`ledger.clients`. Importing `ledger.clients` here also fixes the order in which the clients,
the embedded engine and the remote protocol load (each imports modules of the others), since
this module runs first whichever `ledger` module a caller names.
"""

from ledger.allocation import allocate
from ledger.buckets import (
    Allocation,
    AllocationLeg,
    BucketBalance,
    BucketsLedger,
    Delivery,
    DeliveryStatus,
)
from ledger.clients import LedgerClient, batch_size_max, open_ledger_client
from ledger.collections import (
    CollectionLedgerState,
    CollectionLedgerStatus,
    CollectionMovement,
    CollectionsLedger,
    Reversal,
)
from ledger.currencies import Currency, CurrencyRegistry
from ledger.errors import (
    CollectionNotCredited,
    InvalidAmount,
    LedgerError,
    LedgerUnavailable,
    ReservationReleased,
)
from ledger.funding import BankFunding, EntryCredit
from ledger.invariants import InvariantViolation, ensure, unreachable
from ledger.netting import NettedItem, NettedPair, Netting
from ledger.payouts import Payout, Payouts
from ledger.service import Ledger, Posted, amount_minor_max, hold_timeout_seconds_max
from ledger.statements import StatementEntry, Statements, statement_limit_max
from ledger.transfers import Leg, TransferCode, linked, new_object_id, transfer_id
from ledger.turn_batching import TurnBatcher

__all__ = [
    "Allocation",
    "AllocationLeg",
    "BankFunding",
    "BucketBalance",
    "BucketsLedger",
    "CollectionLedgerState",
    "CollectionLedgerStatus",
    "CollectionMovement",
    "CollectionNotCredited",
    "CollectionsLedger",
    "Currency",
    "CurrencyRegistry",
    "Delivery",
    "DeliveryStatus",
    "EntryCredit",
    "InvalidAmount",
    "InvariantViolation",
    "Ledger",
    "LedgerClient",
    "LedgerError",
    "LedgerUnavailable",
    "Leg",
    "NettedItem",
    "NettedPair",
    "Netting",
    "Payout",
    "Payouts",
    "Posted",
    "ReservationReleased",
    "Reversal",
    "StatementEntry",
    "Statements",
    "TransferCode",
    "TurnBatcher",
    "allocate",
    "amount_minor_max",
    "batch_size_max",
    "ensure",
    "hold_timeout_seconds_max",
    "linked",
    "new_object_id",
    "open_ledger_client",
    "statement_limit_max",
    "transfer_id",
    "unreachable",
]
