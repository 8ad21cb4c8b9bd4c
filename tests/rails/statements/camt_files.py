"""camt.053 and camt.054 files written element by element for the tests, in the order the
official schemas prescribe, in versions .02 and .08: what a bank sends, with the values a test
chooses (the account, the entries and their references, the balances)."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape

sandbox_eur_iban = "DE89370400440532013000"


@dataclass(frozen=True)
class EntrySpec:
    amount: str
    direction: str = "CRDT"
    status: str = "BOOK"
    servicer_reference: str | None = None
    entry_reference: str | None = None
    end_to_end_id: str | None = None
    unstructured: tuple[str, ...] = ()
    creditor_reference: str | None = None
    booking_date: str = "2025-03-14"
    value_date: str = "2025-03-14"


@dataclass(frozen=True)
class FileSpec:
    kind: str = "camt.053"
    version: str = "08"
    message_id: str = "MSG-0001"
    report_id: str = "STMT-0001"
    account: str = sandbox_eur_iban
    account_is_iban: bool = True
    currency: str = "EUR"
    entries: tuple[EntrySpec, ...] = ()
    opening: tuple[str, str] | None = ("1000.00", "CRDT")
    closing: tuple[str, str] | None = ("1000.00", "CRDT")
    created_at: str = "2025-03-14T18:00:00+01:00"
    extra_reports: tuple[str, ...] = field(default=())


def _status(spec: EntrySpec, version: str) -> str:
    return f"<Sts><Cd>{spec.status}</Cd></Sts>" if version == "08" else f"<Sts>{spec.status}</Sts>"


def _details(spec: EntrySpec) -> str:
    refs = (
        f"<Refs><EndToEndId>{escape(spec.end_to_end_id)}</EndToEndId></Refs>"
        if spec.end_to_end_id
        else ""
    )
    remittance = "".join(f"<Ustrd>{escape(line)}</Ustrd>" for line in spec.unstructured)
    if spec.creditor_reference:
        remittance += (
            f"<Strd><CdtrRefInf><Ref>{escape(spec.creditor_reference)}</Ref></CdtrRefInf></Strd>"
        )
    if not refs and not remittance:
        return ""
    rmt = f"<RmtInf>{remittance}</RmtInf>" if remittance else ""
    return f"<NtryDtls><TxDtls>{refs}{rmt}</TxDtls></NtryDtls>"


def entry(spec: EntrySpec, *, currency: str, version: str) -> str:
    parts = [
        "<Ntry>",
        f"<NtryRef>{escape(spec.entry_reference)}</NtryRef>" if spec.entry_reference else "",
        f'<Amt Ccy="{currency}">{spec.amount}</Amt>',
        f"<CdtDbtInd>{spec.direction}</CdtDbtInd>",
        _status(spec, version),
        f"<BookgDt><Dt>{spec.booking_date}</Dt></BookgDt>",
        f"<ValDt><Dt>{spec.value_date}</Dt></ValDt>",
        f"<AcctSvcrRef>{escape(spec.servicer_reference)}</AcctSvcrRef>"
        if spec.servicer_reference
        else "",
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
        "</Domn></BkTxCd>",
        _details(spec),
        "</Ntry>",
    ]
    return "".join(parts)


def _balance(code: str, amount: tuple[str, str], currency: str) -> str:
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="{currency}">{amount[0]}</Amt><CdtDbtInd>{amount[1]}</CdtDbtInd>'
        "<Dt><Dt>2025-03-14</Dt></Dt></Bal>"
    )


def report(spec: FileSpec) -> str:
    account_id = (
        f"<IBAN>{spec.account}</IBAN>"
        if spec.account_is_iban
        else f"<Othr><Id>{spec.account}</Id></Othr>"
    )
    statement = spec.kind == "camt.053"
    tag = "Stmt" if statement else "Ntfctn"
    created = f"<CreDtTm>{spec.created_at}</CreDtTm>" if spec.version == "02" else ""
    balances = ""
    if statement:
        balances = "".join(
            _balance(code, amount, spec.currency)
            for code, amount in (("OPBD", spec.opening), ("CLBD", spec.closing))
            if amount is not None
        )
    entries = "".join(entry(e, currency=spec.currency, version=spec.version) for e in spec.entries)
    return (
        f"<{tag}><Id>{spec.report_id}</Id>{created}"
        f"<Acct><Id>{account_id}</Id><Ccy>{spec.currency}</Ccy></Acct>"
        f"{balances}{entries}</{tag}>"
    )


def camt(spec: FileSpec) -> bytes:
    """The file `spec` describes."""
    message = f"{spec.kind}.001.{spec.version}"
    top = "BkToCstmrStmt" if spec.kind == "camt.053" else "BkToCstmrDbtCdtNtfctn"
    header = (
        f"<GrpHdr><MsgId>{spec.message_id}</MsgId><CreDtTm>{spec.created_at}</CreDtTm></GrpHdr>"
    )
    body = report(spec) + "".join(spec.extra_reports)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:{message}">'
        f"<{top}>{header}{body}</{top}></Document>"
    ).encode()
