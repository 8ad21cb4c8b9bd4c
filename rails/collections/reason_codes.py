"""What each scheme's reason codes mean, and which of them end the mandate.

A provider says why a mandate or a collection failed, or why a collected amount came back,
with a short code of its scheme. Kovra keeps the code as the provider gave it (operators and
tenants search by it), shows the sentence beside it, and acts on one fact about it: whether
the failure is final for the mandate. An account closed (SEPA AC04, Bacs B) or a mandate the
debtor's bank does not know (SEPA MD01, Bacs 6) will fail every later collection too, so the
mandate should be deactivated; insufficient funds (SEPA AM04, Bacs 0) will not, and the
tenant may collect again.

- SEPA Direct Debit: the ISO 20022 external status reason codes the EPC's SDD Core rulebook
  uses in R-transactions (rejects, returns, refunds, refusals), as a pain.002 or a camt.054
  carries them.
- Bacs Direct Debit: one alphabet serves ARUDD (unpaid collections), AUDDIS (instruction
  set-up) and ADDACS (instruction changes); where two of the reports share a code they mean
  the same fact, and the table gives the collection's reading (ARUDD's). Submissions refused
  before they reach Bacs (an amount or currency Bacs does not carry) are reported with the
  ISO codes AM02 and AM03, as the providers' APIs do.
- PayWithAccount: the NIBSS Instant Payment response codes, which the Nigerian banks behind
  PayWithAccount answer direct debits with, and PayWithAccount's own `MNDCNL` for a debit
  under a mandate that was cancelled.

An unknown code is described as unknown and never ends a mandate: deactivating on a guess
would stop a customer's payments for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec


class ReasonCode(msgspec.Struct, frozen=True, kw_only=True):
    """One reason code of a scheme: what it means, and whether it ends the mandate."""

    code: str
    description: str
    mandate_fatal: bool


def _table(*codes: ReasonCode) -> Mapping[str, ReasonCode]:
    table = {reason.code: reason for reason in codes}
    if len(table) != len(codes):
        raise ValueError("a scheme's reason codes are unique")
    return table


def _fatal(code: str, description: str) -> ReasonCode:
    return ReasonCode(code=code, description=description, mandate_fatal=True)


def _passing(code: str, description: str) -> ReasonCode:
    return ReasonCode(code=code, description=description, mandate_fatal=False)


sepa_reasons = _table(
    _fatal("AC01", "The debtor's account identifier (IBAN) is incorrect."),
    _fatal("AC04", "The debtor's account is closed."),
    _fatal("AC06", "The debtor's account is blocked, or blocked for direct debits."),
    _fatal("AC13", "The debtor's account type does not accept this kind of direct debit."),
    _fatal("AG01", "Direct debits are forbidden on this account for regulatory reasons."),
    _passing("AG02", "The operation or sequence type is not valid for this transaction."),
    _passing("AM02", "The amount exceeds what the scheme allows."),
    _passing("AM03", "The currency is not one the scheme collects."),
    _passing("AM04", "The debtor's account had insufficient funds."),
    _passing("AM05", "The collection is a duplicate of one already presented."),
    _passing("BE05", "The creditor identifier is not recognised by the debtor's bank."),
    _passing("CNOR", "The creditor's bank is not reachable for SEPA direct debits."),
    _fatal("DNOR", "The debtor's bank is not reachable for SEPA direct debits."),
    _passing("FF01", "The file or message was not in a valid format."),
    _fatal("MD01", "The debtor's bank holds no valid mandate for this collection."),
    _fatal("MD02", "Mandatory information in the mandate is missing or incorrect."),
    _passing("MD06", "The debtor asked for a refund of this collection (disputed)."),
    _fatal("MD07", "The debtor is deceased."),
    _passing("MS02", "The debtor refused the collection; no reason given."),
    _passing("MS03", "The debtor's bank refused the collection; no reason given."),
    _fatal("RC01", "The debtor's bank identifier (BIC) is incorrect."),
    _fatal("RR01", "The debtor's account or identification is missing (regulatory)."),
    _fatal("RR02", "The debtor's name or address is missing (regulatory)."),
    _passing("RR03", "The creditor's name or address is missing (regulatory)."),
    _passing("RR04", "The collection was refused for a regulatory reason."),
    _fatal("SL01", "The debtor's bank blocks direct debits from this creditor for the debtor."),
)
sepa_mandate_cancelled = "MD01"
sepa_unspecified = "MS03"

bacs_reasons = _table(
    _passing("0", "Refer to payer: the payer's bank did not pay, usually for lack of funds."),
    _fatal("1", "The Direct Debit Instruction was cancelled by the payer."),
    _fatal("2", "The payer is deceased."),
    _fatal("3", "The payer's account was transferred to another bank."),
    _passing("4", "The payer disputes the advance notice of this collection."),
    _fatal("5", "No such account, or the account does not accept Direct Debits."),
    _fatal("6", "The payer's bank holds no Direct Debit Instruction for this collection."),
    _passing("7", "The amount differs from the advance notice given to the payer."),
    _passing("8", "The collection was presented before the amount was due."),
    _passing("9", "The collection was presented too late, after the date notified."),
    _fatal("A", "The instruction is for a different service user."),
    _fatal("B", "The payer's account is closed."),
    _fatal("C", "The payer's account was transferred to another branch."),
    _fatal("F", "The account type does not accept Direct Debits."),
    _fatal("G", "The payer's bank will not accept Direct Debits on this account."),
    _fatal("H", "The Direct Debit Instruction has expired."),
    _fatal("L", "The payer's account details are incorrect."),
    _passing("AM02", "The amount exceeds what Bacs carries in one collection."),
    _passing("AM03", "The currency is not sterling; Bacs collects only GBP."),
)
bacs_mandate_cancelled = "1"
bacs_unspecified = "0"

paywithaccount_reasons = _table(
    _passing("01", "The status of the debit is unknown at the payer's bank."),
    _passing("05", "The payer's bank declined the debit (do not honour)."),
    _fatal("06", "The payer's account is dormant."),
    _fatal("07", "The payer's account number is invalid."),
    _fatal("08", "The account name does not match the account number."),
    _passing("12", "The transaction is invalid."),
    _passing("13", "The amount is invalid."),
    _passing("AM03", "The currency is not naira; PayWithAccount collects only NGN."),
    _fatal("16", "The bank code is unknown."),
    _passing("26", "The debit is a duplicate of one already presented."),
    _passing("34", "The payer's bank suspects fraud."),
    _passing("51", "The payer's account had insufficient funds."),
    _fatal("57", "The payer's account is not permitted to be debited this way."),
    _passing("61", "The debit exceeds the payer's transfer limit."),
    _passing("65", "The payer's account exceeded its debit frequency."),
    _passing("91", "The payer's bank is not available."),
    _passing("96", "A system malfunction at the payer's bank or the switch."),
    _passing("97", "The payer's bank did not answer in time."),
    _fatal("MNDCNL", "The mandate was cancelled; no debit may be made under it."),
)
paywithaccount_mandate_cancelled = "MNDCNL"
paywithaccount_unspecified = "96"


def describe(table: Mapping[str, ReasonCode], code: str) -> str:
    """The sentence for `code` in `table`, or a sentence saying the code is unknown."""
    reason = table.get(code)
    if reason is None:
        return f"Unknown reason code {code!r}."
    return reason.description


def is_fatal(table: Mapping[str, ReasonCode], code: str) -> bool:
    """Whether `code` ends the mandate; an unknown code never does."""
    reason = table.get(code)
    return reason is not None and reason.mandate_fatal
