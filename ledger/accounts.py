"""The account model of SPEC §4: account types, their flags, and the account-id codec.

An account id is computed, never looked up, so the hot path needs no database read to know
which TigerBeetle accounts a request touches:

    [tenant_id:64][account_type:8][currency:24][sub_account:32]   (most significant first)

Tenant 0 is the platform; the currency is the ISO 4217 numeric code, which is also the
account's ledger; sub-account 0 is the main account. A customer's buckets (SPEC §11) are
sub-accounts of the tenant's wallet, numbered from 1; a partner's settlement account is
numbered by the partner.
"""

from __future__ import annotations

import enum
import functools

import msgspec
import tigerbeetle as tb

from ledger.invariants import ensure

platform_tenant_id = 0
tenant_id_bits = 64
account_type_bits = 8
currency_bits = 24
sub_account_bits = 32

tenant_id_max = (1 << tenant_id_bits) - 1
account_type_max = (1 << account_type_bits) - 1
currency_number_field_max = (1 << currency_bits) - 1
sub_account_max = (1 << sub_account_bits) - 1

_sub_account_shift = 0
_currency_shift = sub_account_bits
_account_type_shift = sub_account_bits + currency_bits
_tenant_shift = sub_account_bits + currency_bits + account_type_bits


class AccountOwner(enum.Enum):
    TENANT = "tenant"
    PLATFORM = "platform"


class AccountType(enum.IntEnum):
    """Account types; the value is the TigerBeetle account `code`."""

    TENANT_WALLET = 1
    FEE_REVENUE = 2
    FX_POSITION = 3
    PENDING_INBOUND = 4
    PENDING_OUTBOUND = 5
    REGIONAL_SETTLEMENT = 6
    SUSPENSE = 7
    PARTNER_SETTLEMENT = 8

    @property
    def owner(self) -> AccountOwner:
        return _account_type_owner[self]

    @property
    def flags(self) -> tb.AccountFlags:
        return _account_type_flags[self]


_account_type_owner: dict[AccountType, AccountOwner] = {
    AccountType.TENANT_WALLET: AccountOwner.TENANT,
    AccountType.FEE_REVENUE: AccountOwner.PLATFORM,
    AccountType.FX_POSITION: AccountOwner.PLATFORM,
    AccountType.PENDING_INBOUND: AccountOwner.TENANT,
    AccountType.PENDING_OUTBOUND: AccountOwner.TENANT,
    AccountType.REGIONAL_SETTLEMENT: AccountOwner.PLATFORM,
    AccountType.SUSPENSE: AccountOwner.PLATFORM,
    AccountType.PARTNER_SETTLEMENT: AccountOwner.TENANT,
}

_account_type_flags: dict[AccountType, tb.AccountFlags] = {
    AccountType.TENANT_WALLET: tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | tb.AccountFlags.HISTORY,
    AccountType.FEE_REVENUE: tb.AccountFlags.HISTORY,
    AccountType.FX_POSITION: tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountType.PENDING_INBOUND: tb.AccountFlags.NONE,
    AccountType.PENDING_OUTBOUND: tb.AccountFlags.NONE,
    AccountType.REGIONAL_SETTLEMENT: tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    # Money the bank holds that no wallet owns yet (an unmatched credit, a credit balance)
    # or that the bank took and no wallet paid (a return's shortfall, a debit balance):
    # either way an operations exception until a person resolves it.
    AccountType.SUSPENSE: tb.AccountFlags.HISTORY,
    # What a tenant's customers' buckets delivered to one partner institution (SPEC §11):
    # the sub-account is the partner's ledger number, so each partner's total is one read.
    AccountType.PARTNER_SETTLEMENT: tb.AccountFlags.HISTORY,
}


class AccountIdError(ValueError):
    """A part of an account id is out of range (a caller bug or a forged id)."""


class AccountAddress(msgspec.Struct, frozen=True, kw_only=True):
    """The decoded parts of an account id."""

    tenant_id: int
    account_type: AccountType
    currency_number: int
    sub_account: int = 0


def _check_range(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise AccountIdError(f"{name} must be between 0 and {maximum}, got {value}")


def encode_account_id(
    *, tenant_id: int, account_type: AccountType, currency_number: int, sub_account: int = 0
) -> int:
    """Pack the parts into a u128 account id, rejecting any part out of range."""
    _check_range("tenant_id", tenant_id, tenant_id_max)
    if not isinstance(account_type, AccountType):
        raise AccountIdError(f"account_type must be an AccountType, got {account_type!r}")
    _check_range("currency_number", currency_number, currency_number_field_max)
    if currency_number == 0:
        raise AccountIdError("currency_number must not be zero (it is the account's ledger)")
    _check_range("sub_account", sub_account, sub_account_max)
    expected_owner = (
        AccountOwner.PLATFORM if tenant_id == platform_tenant_id else (AccountOwner.TENANT)
    )
    if account_type.owner is not expected_owner:
        raise AccountIdError(
            f"{account_type.name} accounts belong to the {account_type.owner.value}, "
            f"not tenant {tenant_id}"
        )
    account_id = (
        (tenant_id << _tenant_shift)
        | (int(account_type) << _account_type_shift)
        | (currency_number << _currency_shift)
        | (sub_account << _sub_account_shift)
    )
    ensure(0 < account_id < (1 << 128) - 1, "account ids are never 0 or u128 max")
    return account_id


def decode_account_id(account_id: int) -> AccountAddress:
    """Unpack a u128 account id; `AccountIdError` when it is not one Kovra could have made."""
    if not 0 < account_id < (1 << 128):
        raise AccountIdError(f"account id {account_id} is not a positive u128")
    tenant_id = account_id >> _tenant_shift
    type_value = (account_id >> _account_type_shift) & account_type_max
    currency_number = (account_id >> _currency_shift) & currency_number_field_max
    sub_account = account_id & sub_account_max
    try:
        account_type = AccountType(type_value)
    except ValueError:
        raise AccountIdError(f"account id {account_id} has unknown type {type_value}") from None
    address = AccountAddress(
        tenant_id=tenant_id,
        account_type=account_type,
        currency_number=currency_number,
        sub_account=sub_account,
    )
    # Re-encoding validates owner and currency, so a decoded address is always a valid one.
    encode_account_id(
        tenant_id=tenant_id,
        account_type=account_type,
        currency_number=currency_number,
        sub_account=sub_account,
    )
    return address


# Every payout computes four account ids; the ids computed most recently are kept, so the
# checks run once per account rather than once per payout. Typed, so that a plain int never
# passes for an `AccountType` on the strength of an earlier call.
account_ids_cached_max = 65_536


@functools.lru_cache(maxsize=account_ids_cached_max, typed=True)
def tenant_account_id(
    tenant_id: int, account_type: AccountType, currency_number: int, sub_account: int = 0
) -> int:
    """The id of a tenant-owned account; tenant 0 is reserved for the platform."""
    if tenant_id == platform_tenant_id:
        raise AccountIdError("tenant 0 is the platform; tenants start at 1")
    return encode_account_id(
        tenant_id=tenant_id,
        account_type=account_type,
        currency_number=currency_number,
        sub_account=sub_account,
    )


@functools.lru_cache(maxsize=account_ids_cached_max, typed=True)
def platform_account_id(account_type: AccountType, currency_number: int) -> int:
    """The id of a platform-owned account in `currency_number`."""
    return encode_account_id(
        tenant_id=platform_tenant_id,
        account_type=account_type,
        currency_number=currency_number,
    )


def new_account(account_id: int) -> tb.Account:
    """The TigerBeetle `Account` for `account_id`, with the flags and code of its type.

    `user_data_64` carries the tenant id so `query_accounts` can list a tenant's accounts.
    """
    address = decode_account_id(account_id)
    return tb.Account(
        id=account_id,
        ledger=address.currency_number,
        code=int(address.account_type),
        flags=address.account_type.flags,
        user_data_64=address.tenant_id,
        user_data_32=address.sub_account,
    )
