"""The account-id codec of `ledger.accounts` is a bijection between valid parts and ids.

Every valid (tenant, type, currency, sub-account) encodes to the documented bit layout and
decodes back to the same parts; every part out of range, and every id Kovra could not have
made, is refused with `AccountIdError`; `new_account` gives each type its ledger, code, flags
and tenant tag.
"""

from __future__ import annotations

from typing import cast

import pytest
import tigerbeetle as tb
from hypothesis import given
from hypothesis import strategies as st

from ledger.accounts import (
    AccountAddress,
    AccountIdError,
    AccountOwner,
    AccountType,
    decode_account_id,
    encode_account_id,
    new_account,
    platform_account_id,
    tenant_account_id,
)

AF = tb.AccountFlags
u128_max = (1 << 128) - 1
tenant_id_max = (1 << 64) - 1
currency_max = (1 << 24) - 1
sub_account_max = (1 << 32) - 1
eur = 978

tenant_types = [t for t in AccountType if t.owner is AccountOwner.TENANT]
platform_types = [t for t in AccountType if t.owner is AccountOwner.PLATFORM]

expected_flags = {
    AccountType.TENANT_WALLET: AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.HISTORY,
    AccountType.FEE_REVENUE: AF.HISTORY,
    AccountType.FX_POSITION: AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountType.PENDING_INBOUND: AF.NONE,
    AccountType.PENDING_OUTBOUND: AF.NONE,
    AccountType.REGIONAL_SETTLEMENT: AF.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountType.SUSPENSE: AF.HISTORY,
    AccountType.PARTNER_SETTLEMENT: AF.HISTORY,
}


@st.composite
def addresses(draw: st.DrawFn) -> AccountAddress:
    """Any valid address: tenant types with a tenant >= 1, platform types with tenant 0."""
    account_type = draw(st.sampled_from(AccountType))
    if account_type.owner is AccountOwner.PLATFORM:
        tenant_id = 0
    else:
        tenant_id = draw(st.integers(min_value=1, max_value=tenant_id_max))
    return AccountAddress(
        tenant_id=tenant_id,
        account_type=account_type,
        currency_number=draw(st.integers(min_value=1, max_value=currency_max)),
        sub_account=draw(st.integers(min_value=0, max_value=sub_account_max)),
    )


def _encode(address: AccountAddress) -> int:
    return encode_account_id(
        tenant_id=address.tenant_id,
        account_type=address.account_type,
        currency_number=address.currency_number,
        sub_account=address.sub_account,
    )


def test_the_ownership_split_covers_every_type() -> None:
    assert set(tenant_types) == {
        AccountType.TENANT_WALLET,
        AccountType.PENDING_INBOUND,
        AccountType.PENDING_OUTBOUND,
        AccountType.PARTNER_SETTLEMENT,
    }
    assert set(platform_types) == {
        AccountType.FEE_REVENUE,
        AccountType.FX_POSITION,
        AccountType.REGIONAL_SETTLEMENT,
        AccountType.SUSPENSE,
    }


@given(addresses())
def test_encode_then_decode_gives_the_same_parts(address: AccountAddress) -> None:
    account_id = _encode(address)
    assert 0 < account_id < u128_max
    assert decode_account_id(account_id) == address


@given(addresses(), addresses())
def test_different_parts_give_different_ids(first: AccountAddress, second: AccountAddress) -> None:
    assert (_encode(first) == _encode(second)) == (first == second)


@given(addresses())
def test_the_helpers_agree_with_the_codec(address: AccountAddress) -> None:
    if address.account_type.owner is AccountOwner.TENANT:
        account_id = tenant_account_id(
            address.tenant_id,
            address.account_type,
            address.currency_number,
            address.sub_account,
        )
        assert account_id == _encode(address)
    elif address.sub_account == 0:
        account_id = platform_account_id(address.account_type, address.currency_number)
        assert account_id == _encode(address)


@pytest.mark.parametrize("account_type", list(AccountType))
def test_the_extremes_round_trip(account_type: AccountType) -> None:
    tenants = [0] if account_type.owner is AccountOwner.PLATFORM else [1, tenant_id_max]
    for tenant_id in tenants:
        for currency_number in (1, currency_max):
            for sub_account in (0, sub_account_max):
                address = AccountAddress(
                    tenant_id=tenant_id,
                    account_type=account_type,
                    currency_number=currency_number,
                    sub_account=sub_account,
                )
                assert decode_account_id(_encode(address)) == address


def test_the_bit_layout_is_tenant_type_currency_sub_account() -> None:
    account_id = encode_account_id(
        tenant_id=0x0102030405060708,
        account_type=AccountType.PENDING_OUTBOUND,
        currency_number=eur,
        sub_account=0x0A0B0C0D,
    )
    # [tenant_id:64][account_type:8][currency:24][sub_account:32], most significant first.
    assert account_id == 0x0102030405060708_05_0003D2_0A0B0C0D
    assert account_id.to_bytes(16, "big") == bytes.fromhex(
        "0102030405060708" + "05" + "0003d2" + "0a0b0c0d"
    )
    assert platform_account_id(AccountType.FEE_REVENUE, eur) == (2 << 56) | (eur << 32)


@pytest.mark.parametrize(
    ("tenant_id", "account_type", "currency_number", "sub_account"),
    [
        pytest.param(-1, AccountType.TENANT_WALLET, eur, 0, id="negative-tenant"),
        pytest.param(1 << 64, AccountType.TENANT_WALLET, eur, 0, id="tenant-too-large"),
        pytest.param(1, AccountType.TENANT_WALLET, 0, 0, id="currency-zero"),
        pytest.param(1, AccountType.TENANT_WALLET, -1, 0, id="negative-currency"),
        pytest.param(1, AccountType.TENANT_WALLET, 1 << 24, 0, id="currency-too-large"),
        pytest.param(1, AccountType.TENANT_WALLET, eur, -1, id="negative-sub-account"),
        pytest.param(1, AccountType.TENANT_WALLET, eur, 1 << 32, id="sub-account-too-large"),
        pytest.param(0, AccountType.TENANT_WALLET, eur, 0, id="wallet-of-tenant-0"),
        pytest.param(0, AccountType.PENDING_INBOUND, eur, 0, id="pending-in-of-tenant-0"),
        pytest.param(0, AccountType.PENDING_OUTBOUND, eur, 0, id="pending-out-of-tenant-0"),
        pytest.param(7, AccountType.FEE_REVENUE, eur, 0, id="fee-revenue-of-a-tenant"),
        pytest.param(7, AccountType.FX_POSITION, eur, 0, id="fx-position-of-a-tenant"),
        pytest.param(7, AccountType.REGIONAL_SETTLEMENT, eur, 0, id="settlement-of-a-tenant"),
        pytest.param(1, cast(AccountType, 1), eur, 0, id="type-not-an-account-type"),
    ],
)
def test_out_of_range_parts_are_refused(
    tenant_id: int, account_type: AccountType, currency_number: int, sub_account: int
) -> None:
    with pytest.raises(AccountIdError):
        encode_account_id(
            tenant_id=tenant_id,
            account_type=account_type,
            currency_number=currency_number,
            sub_account=sub_account,
        )


def test_the_helpers_refuse_the_wrong_owner() -> None:
    with pytest.raises(AccountIdError):
        tenant_account_id(0, AccountType.TENANT_WALLET, eur)
    with pytest.raises(AccountIdError):
        tenant_account_id(5, AccountType.FEE_REVENUE, eur)
    with pytest.raises(AccountIdError):
        platform_account_id(AccountType.TENANT_WALLET, eur)


def test_a_remembered_id_is_never_given_for_a_plain_int() -> None:
    """The helpers remember their answers; a plain int equal to a type must still be
    refused after that type's id was computed and kept."""
    wallet = tenant_account_id(5, AccountType.TENANT_WALLET, eur)
    assert tenant_account_id(5, AccountType.TENANT_WALLET, eur) == wallet
    with pytest.raises(AccountIdError):
        tenant_account_id(5, cast(AccountType, int(AccountType.TENANT_WALLET)), eur)
    platform_account_id(AccountType.FX_POSITION, eur)
    with pytest.raises(AccountIdError):
        platform_account_id(cast(AccountType, int(AccountType.FX_POSITION)), eur)


def _raw_id(tenant_id: int, type_byte: int, currency_number: int, sub_account: int = 0) -> int:
    return (tenant_id << 64) | (type_byte << 56) | (currency_number << 32) | sub_account


@pytest.mark.parametrize(
    "account_id",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(1 << 128, id="2^128"),
        pytest.param((1 << 128) + 5, id="above-2^128"),
        pytest.param(u128_max, id="u128-max"),
        pytest.param(_raw_id(1, 0, eur), id="type-byte-0"),
        pytest.param(_raw_id(1, 7, eur), id="type-byte-7"),
        pytest.param(_raw_id(1, 255, eur), id="type-byte-255"),
        pytest.param(_raw_id(1, 1, 0), id="currency-zero"),
        pytest.param(_raw_id(0, 1, eur), id="wallet-of-tenant-0"),
        pytest.param(_raw_id(9, 2, eur), id="fee-revenue-of-a-tenant"),
    ],
)
def test_ids_kovra_could_not_have_made_are_refused(account_id: int) -> None:
    with pytest.raises(AccountIdError):
        decode_account_id(account_id)


@given(st.integers(min_value=0, max_value=255).filter(lambda b: b not in set(AccountType)))
def test_every_unknown_type_byte_is_refused(type_byte: int) -> None:
    with pytest.raises(AccountIdError):
        decode_account_id(_raw_id(1, type_byte, eur))


@pytest.mark.parametrize("account_type", list(AccountType))
def test_new_account_carries_ledger_code_flags_and_tenant(account_type: AccountType) -> None:
    tenant_id = 0 if account_type.owner is AccountOwner.PLATFORM else 0xDEADBEEF
    account_id = encode_account_id(
        tenant_id=tenant_id, account_type=account_type, currency_number=360, sub_account=3
    )
    account = new_account(account_id)
    assert account.id == account_id
    assert account.ledger == 360
    assert account.code == int(account_type)
    assert account.flags == expected_flags[account_type]
    assert account_type.flags == expected_flags[account_type]
    assert account.user_data_64 == tenant_id
    assert account.timestamp == 0
    assert (
        account.debits_pending,
        account.debits_posted,
        account.credits_pending,
        account.credits_posted,
    ) == (0, 0, 0, 0)


@given(addresses())
def test_new_account_works_for_every_valid_id(address: AccountAddress) -> None:
    account = new_account(_encode(address))
    assert (account.ledger, account.code, account.user_data_64) == (
        address.currency_number,
        int(address.account_type),
        address.tenant_id,
    )
    assert account.flags == expected_flags[address.account_type]


def test_new_account_refuses_a_forged_id() -> None:
    with pytest.raises(AccountIdError):
        new_account(_raw_id(1, 9, eur))
