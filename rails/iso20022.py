"""ISO 20022 messages of the rails: pacs.008 out (one per payout), pain.001 out (one per
rail per batch), pacs.002 in (status).

Messages are built element by element in the order the official schema prescribes, and
valid by construction, so building one stays cheap on the hot path (thousands a second)
instead of paying for a schema validation each time:

- free text (names, references, identifiers) is cut to its schema length, never empty, and
  holds only characters XML allows (any other becomes U+FFFD); the serializer escapes the
  XML specials;
- what has a pattern or a range in the schema (currency, BIC, UETR, amount and its minor
  units, and the moment, written in UTC) is checked when an instruction is made, by
  `ensure`: a value outside them is a bug upstream, not something to send;
- bank details come from `rails.bank_details`, which validated them when the recipient was
  created.

The tests hold the builders to the official XSDs shipped in `rails/schemas/` over a wide
range of inputs (every rail and kind of bank details, amounts at the schema's bounds, texts
at their length limits, in any script and full of XML specials). `validate` checks a message
against them: for the tests, and for messages received. Status reports are read with the
standard library's parser (no entity expansion is possible in ElementTree) and reduced to
what the lifecycle needs: accepted, rejected with its ISO reason, or pending.
"""

from __future__ import annotations

import datetime
import functools
import re
import uuid
import xml.etree.ElementTree as ET
from decimal import Decimal
from importlib import resources
from typing import Literal

import msgspec
from lxml import etree

from ledger.invariants import ensure
from rails.bank_details import BankDetails, EuBankDetails, IdBankDetails, UkBankDetails
from rails.corridors import Rail

pacs008_namespace = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
pain001_namespace = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
pacs002_namespace_prefix = "urn:iso:std:iso:20022:tech:xsd:pacs.002."
text_length_max = 140
identifier_length_max = 35
account_identifier_length_max = 34  # An account's other identification: Max34Text.
report_bytes_max = 256 * 1024
# The schemas' amounts: at most 18 digits in all, 5 of them after the decimal point.
amount_digits_max = 18
minor_units_max = 5
uetr_version = 4  # The schemas' UETR is a version 4 UUID.
_currency_pattern = re.compile(r"[A-Z]{3}")
_bic_pattern = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
# What XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE and U+FFFF).
_not_xml_characters = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
uk_clearing_system = "GBDSC"  # ISO external code list: UK Domestic Sort Code.
id_clearing_system = "IDBI"  # Proprietary: Bank Indonesia member code.
_service_levels = {
    Rail.SEPA_INSTANT: ("SEPA", "INST"),
    Rail.SEPA_CREDIT_TRANSFER: ("SEPA", None),
    Rail.FASTER_PAYMENTS: (None, "FPS"),
    Rail.CHAPS: ("URGP", None),
    Rail.BI_FAST: (None, "BIFAST"),
    Rail.RTGS: ("URGP", None),
}


class InvalidMessage(ValueError):
    """A message does not match its official schema, or cannot be one (an empty pain.001)."""


class PayoutInstruction(msgspec.Struct, frozen=True, kw_only=True):
    """What one pacs.008 carries: one payout from the platform to one recipient."""

    message_id: str
    end_to_end_id: str
    uetr: uuid.UUID
    rail: Rail
    currency: str
    amount_minor: int
    minor_units: int
    debtor_name: str
    debtor_agent_bic: str
    creditor_name: str
    creditor_details: BankDetails
    reference: str
    created_at: datetime.datetime

    def __post_init__(self) -> None:
        _check_currency(self.currency, self.minor_units)
        _check_payment(self.uetr, self.amount_minor)
        _check_bic(self.debtor_agent_bic)
        _check_moment(self.created_at)


class BatchPayment(msgspec.Struct, frozen=True, kw_only=True):
    """One credit transfer of a pain.001: an item of a batch."""

    end_to_end_id: str
    uetr: uuid.UUID
    amount_minor: int
    creditor_name: str
    creditor_details: BankDetails
    reference: str

    def __post_init__(self) -> None:
        _check_payment(self.uetr, self.amount_minor)


class BatchInstruction(msgspec.Struct, frozen=True, kw_only=True):
    """What one pain.001 carries: a batch's payments on one rail, in one currency."""

    message_id: str
    payment_information_id: str
    rail: Rail
    currency: str
    minor_units: int
    initiating_party_name: str
    debtor_name: str
    debtor_account: str
    debtor_agent_bic: str
    created_at: datetime.datetime
    payments: list[BatchPayment]

    def __post_init__(self) -> None:
        _check_currency(self.currency, self.minor_units)
        _check_bic(self.debtor_agent_bic)
        _check_moment(self.created_at)


def _check_currency(currency: str, minor_units: int) -> None:
    ensure(_currency_pattern.fullmatch(currency) is not None, f"{currency!r} is no ISO currency")
    ensure(
        0 <= minor_units <= minor_units_max,
        f"the schemas carry 0 to {minor_units_max} minor units, not {minor_units}",
    )


def _check_payment(uetr: uuid.UUID, amount_minor: int) -> None:
    ensure(uetr.version == uetr_version, f"a UETR is a version {uetr_version} UUID: {uetr}")
    ensure(
        0 <= amount_minor < 10**amount_digits_max,
        f"the schemas carry amounts of 0 to {amount_digits_max} digits, not {amount_minor}",
    )


def _check_bic(bic: str) -> None:
    ensure(_bic_pattern.fullmatch(bic) is not None, f"{bic!r} is no BIC")


def _check_moment(created_at: datetime.datetime) -> None:
    # The messages write the moment in UTC (with a Z), as read from the datetime.
    ensure(
        created_at.utcoffset() == datetime.timedelta(0),
        f"a message's moment is in UTC, not {created_at.isoformat()}",
    )


class StatusReport(msgspec.Struct, frozen=True, kw_only=True):
    end_to_end_id: str
    status: Literal["accepted", "rejected", "pending"]
    reason_code: str | None
    iso_status: str


# Our own messages are parsed for validation with entities and the network switched off.
_parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    """The official XSD, compiled once by libxml2 and kept: the tests validate thousands of
    messages against it."""
    path = resources.files("rails").joinpath("schemas", name)
    return etree.XMLSchema(etree.parse(str(path), parser=_parser))


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _bounded(text: str, length: int) -> str:
    """`text` as the schema's MaxNText takes it: XML characters only, 1 to `length` of them."""
    return _not_xml_characters.sub("\ufffd", text).strip()[:length] or "-"


def _amount(amount_minor: int, minor_units: int) -> str:
    return f"{Decimal(amount_minor).scaleb(-minor_units):.{minor_units}f}"


def build_pacs008(instruction: PayoutInstruction) -> bytes:
    """The pacs.008.001.08 for one payout, written as text in the schema's order: the
    worker builds one per payout, and joining escaped strings costs a fraction of building
    and serializing an element tree (`build_pain001` is written the same way)."""
    created_at = instruction.created_at
    parts = [
        _xml_declaration,
        f'<Document xmlns="{pacs008_namespace}"><FIToFICstmrCdtTrf><GrpHdr>',
        _leaf("MsgId", _bounded(instruction.message_id, identifier_length_max)),
        _leaf("CreDtTm", created_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
        "<NbOfTxs>1</NbOfTxs><SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>",
        "<CdtTrfTxInf><PmtId>",
        _leaf("EndToEndId", _bounded(instruction.end_to_end_id, identifier_length_max)),
        _leaf("UETR", str(instruction.uetr)),
        "</PmtId>",
        _payment_type_text(instruction.rail),
        f'<IntrBkSttlmAmt Ccy="{instruction.currency}">',
        _amount(instruction.amount_minor, instruction.minor_units),
        "</IntrBkSttlmAmt>",
        _leaf("IntrBkSttlmDt", created_at.date().isoformat()),
        "<ChrgBr>SLEV</ChrgBr><Dbtr>",
        _leaf("Nm", _bounded(instruction.debtor_name, text_length_max)),
        "</Dbtr><DbtrAgt><FinInstnId>",
        _leaf("BICFI", instruction.debtor_agent_bic),
        "</FinInstnId></DbtrAgt>",
        *_creditor_text(instruction.creditor_details, instruction.creditor_name),
        "<RmtInf>",
        _leaf("Ustrd", _bounded(instruction.reference, text_length_max)),
        "</RmtInf></CdtTrfTxInf></FIToFICstmrCdtTrf></Document>",
    ]
    return "".join(parts).encode()


_xml_declaration = "<?xml version='1.0' encoding='utf-8'?>\n"


def _leaf(tag: str, text: str) -> str:
    """An element holding only text, escaped as ElementTree escapes text (`&`, `<`, `>`)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{tag}>{escaped}</{tag}>"


def _payment_type_text(rail: Rail) -> str:
    """A message's payment type: the rail's service level and local instrument."""
    service_level, local_instrument = _service_levels[rail]
    level = "" if service_level is None else f"<SvcLvl><Cd>{service_level}</Cd></SvcLvl>"
    instrument = (
        ""
        if local_instrument is None
        else f"<LclInstrm><Prtry>{local_instrument}</Prtry></LclInstrm>"
    )
    return f"<PmtTpInf>{level}{instrument}</PmtTpInf>"


def _creditor_text(details: BankDetails, creditor_name: str) -> list[str]:
    """The creditor's agent, name and account of a pacs.008, as text."""
    match details:
        case EuBankDetails(bic=bic, iban=iban):
            agent = [_leaf("BICFI", bic)]
            account = [_leaf("IBAN", iban)]
        case UkBankDetails(sort_code=sort_code, account_number=number):
            agent = [
                f"<ClrSysMmbId><ClrSysId><Cd>{uk_clearing_system}</Cd></ClrSysId>",
                _leaf("MmbId", sort_code),
                "</ClrSysMmbId>",
            ]
            account = ["<Othr>", _leaf("Id", number), "</Othr>"]
        case IdBankDetails(bank_code=bank_code, bank_name=bank_name, account_number=number):
            agent = [
                f"<ClrSysMmbId><ClrSysId><Prtry>{id_clearing_system}</Prtry></ClrSysId>",
                _leaf("MmbId", bank_code),
                "</ClrSysMmbId>",
                _leaf("Nm", bank_name),
            ]
            account = ["<Othr>", _leaf("Id", number), "</Othr>"]
    return [
        "<CdtrAgt><FinInstnId>",
        *agent,
        "</FinInstnId></CdtrAgt><Cdtr>",
        _leaf("Nm", _bounded(creditor_name, text_length_max)),
        "</Cdtr><CdtrAcct><Id>",
        *account,
        "</Id></CdtrAcct>",
    ]


def build_pain001(instruction: BatchInstruction) -> bytes:
    """The pain.001.001.09 of a batch's payments on one rail: a group header with the
    number of transactions and their control sum, one payment information block for the
    rail and currency, one credit transfer per item."""
    if not instruction.payments:
        raise InvalidMessage("a pain.001 carries at least one payment")
    total_minor = sum(payment.amount_minor for payment in instruction.payments)
    ensure(
        total_minor < 10**amount_digits_max,
        f"the control sum has at most {amount_digits_max} digits: {total_minor}",
    )
    count = str(len(instruction.payments))
    control_sum = _amount(total_minor, instruction.minor_units)
    created_at = instruction.created_at
    parts = [
        _xml_declaration,
        f'<Document xmlns="{pain001_namespace}"><CstmrCdtTrfInitn><GrpHdr>',
        _leaf("MsgId", _bounded(instruction.message_id, identifier_length_max)),
        _leaf("CreDtTm", created_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
        _leaf("NbOfTxs", count),
        _leaf("CtrlSum", control_sum),
        "<InitgPty>",
        _leaf("Nm", _bounded(instruction.initiating_party_name, text_length_max)),
        "</InitgPty></GrpHdr><PmtInf>",
        _leaf("PmtInfId", _bounded(instruction.payment_information_id, identifier_length_max)),
        "<PmtMtd>TRF</PmtMtd><BtchBookg>false</BtchBookg>",
        _leaf("NbOfTxs", count),
        _leaf("CtrlSum", control_sum),
        _payment_type_text(instruction.rail),
        "<ReqdExctnDt>",
        _leaf("Dt", created_at.date().isoformat()),
        "</ReqdExctnDt><Dbtr>",
        _leaf("Nm", _bounded(instruction.debtor_name, text_length_max)),
        "</Dbtr><DbtrAcct><Id><Othr>",
        _leaf("Id", _bounded(instruction.debtor_account, account_identifier_length_max)),
        "</Othr></Id></DbtrAcct><DbtrAgt><FinInstnId>",
        _leaf("BICFI", instruction.debtor_agent_bic),
        "</FinInstnId></DbtrAgt><ChrgBr>SLEV</ChrgBr>",
    ]
    for payment in instruction.payments:
        parts += [
            "<CdtTrfTxInf><PmtId>",
            _leaf("EndToEndId", _bounded(payment.end_to_end_id, identifier_length_max)),
            _leaf("UETR", str(payment.uetr)),
            f'</PmtId><Amt><InstdAmt Ccy="{instruction.currency}">',
            _amount(payment.amount_minor, instruction.minor_units),
            "</InstdAmt></Amt>",
            *_creditor_text(payment.creditor_details, payment.creditor_name),
            "<RmtInf>",
            _leaf("Ustrd", _bounded(payment.reference, text_length_max)),
            "</RmtInf></CdtTrfTxInf>",
        ]
    parts.append("</PmtInf></CstmrCdtTrfInitn></Document>")
    return "".join(parts).encode()


def validate(message: bytes, schema_name: str) -> None:
    """Raise `InvalidMessage` unless `message` matches the named official schema."""
    schema = _schema(schema_name)
    try:
        document = etree.fromstring(message, parser=_parser)
    except etree.XMLSyntaxError as error:
        raise InvalidMessage(f"{schema_name}: not well-formed XML: {error}") from None
    try:
        schema.assertValid(document)
    except etree.DocumentInvalid as error:
        raise InvalidMessage(f"{schema_name}: {error}") from None


def parse_pacs002(report: bytes) -> list[StatusReport]:
    """Every transaction status in a pacs.002 (any version), bounded in size."""
    if len(report) > report_bytes_max:
        raise InvalidMessage(f"a status report of more than {report_bytes_max} bytes")
    root = ET.fromstring(report)  # noqa: S314 - ElementTree expands no external entities.
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if not namespace.startswith(pacs002_namespace_prefix):
        raise InvalidMessage(f"not a pacs.002 document: {namespace or root.tag}")
    ns = {"p": namespace}
    statuses = []
    for info in root.iterfind(".//p:TxInfAndSts", ns):
        end_to_end = info.findtext("p:OrgnlEndToEndId", default="", namespaces=ns)
        iso_status = info.findtext("p:TxSts", default="", namespaces=ns)
        reason = info.findtext("p:StsRsnInf/p:Rsn/p:Cd", default=None, namespaces=ns)
        statuses.append(
            StatusReport(
                end_to_end_id=end_to_end,
                iso_status=iso_status,
                reason_code=reason,
                status=_status(iso_status),
            )
        )
    return statuses


def _status(iso_status: str) -> Literal["accepted", "rejected", "pending"]:
    """ISO 20022 ExternalPaymentTransactionStatus1Code, reduced to the lifecycle's needs."""
    if iso_status in ("ACSC", "ACCC", "ACSP", "ACWC", "ACCP", "ACTC", "ACFC"):
        return "accepted"
    if iso_status in ("RJCT", "CANC"):
        return "rejected"
    return "pending"  # PDNG, RCVD and anything newer than this code list.


def build_pacs002(
    *,
    message_id: str,
    original_message_id: str,
    end_to_end_id: str,
    iso_status: str,
    reason_code: str | None,
    created_at: datetime.datetime,
) -> bytes:
    """A pacs.002.001.10 status report (what the sandbox rails answer)."""
    namespace = f"{pacs002_namespace_prefix}001.10"
    document = ET.Element("Document", {"xmlns": namespace})
    report = _add(document, "FIToFIPmtStsRpt")
    header = _add(report, "GrpHdr")
    _add(header, "MsgId", _bounded(message_id, identifier_length_max))
    _add(header, "CreDtTm", created_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    info = _add(report, "TxInfAndSts")
    original = _add(info, "OrgnlGrpInf")
    _add(original, "OrgnlMsgId", _bounded(original_message_id, identifier_length_max))
    _add(original, "OrgnlMsgNmId", "pacs.008.001.08")
    _add(info, "OrgnlEndToEndId", _bounded(end_to_end_id, identifier_length_max))
    _add(info, "TxSts", iso_status)
    if reason_code is not None:
        _add(_add(_add(info, "StsRsnInf"), "Rsn"), "Cd", reason_code)
    report_bytes: bytes = ET.tostring(document, encoding="utf-8", xml_declaration=True)
    return report_bytes
