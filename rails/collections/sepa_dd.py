"""SEPA Direct Debit CORE, euro: mandates on accounts in the SEPA area, collected in runs, each
run one pain.008 (customer direct debit initiation) to the creditor's bank.

A mandate needs `{iban, bic}`: an IBAN of a SEPA country (checksum, format and bank registry
through `schwifty`), and a BIC, which may be left out where `schwifty` derives it from the
IBAN's bank code; a BIC given must be of the IBAN's country.

The creditor (Kovra's collecting account) is configured: its name, its SEPA creditor
identifier (validated as `stdnum.eu.at_02` defines it: country, ISO 7064 check digits,
business code, national identifier), its IBAN and BIC.

The pain.008 is built by `sepaxml` in the newest version it supports that has an official
ISO 20022 schema (`pain.008.001.10`; the schema is in `rails/schemas/`), without a schema
check on the hot path: the tests check every message shape against it. One payment
information block per sequence type (FRST for a mandate's first collection, RCUR after) and
collection date. The message id derives from the run's end-to-end ids, so a run sent again
carries the same id and the bank can refuse it as a duplicate. Names and references are
transliterated to the Latin character set SEPA guarantees end to end (letters, digits and
`/ - ? : ( ) . , ' +` and space), since a bank may reject anything else.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Mapping, Sequence

import msgspec
from anyascii import anyascii
from lxml import etree
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sepaxml import SepaDD
from stdnum.eu import at_02
from stdnum.exceptions import ValidationError

from rails.bank_details import InvalidBankDetails, sepa_countries
from rails.collections import reason_codes
from rails.collections.provider import CollectionRequest, ProviderName
from rails.collections.scheme import only_fields, optional_field, required_field

currency = "EUR"
pain008_version = "pain.008.001.10"
pain008_namespace = f"urn:iso:std:iso:20022:tech:xsd:{pain008_version}"
# The largest amount a pain.008 carries (18 digits, 2 of them decimals, by the schema's
# ActiveOrHistoricCurrencyAndAmount for EUR is bounded far above; SEPA's own limit is
# 999,999,999.99 EUR per transaction), in cents.
amount_max_minor = 99_999_999_999
name_length_max = 70  # The EPC's limit for names, below the schema's 140.
remittance_length_max = 140
message_id_digest_hex = 24
sequence_codes = {"first": "FRST", "recurring": "RCUR"}
bank_detail_fields = ("iban", "bic")
name_fallback = "NOTPROVIDED"
_outside_sepa_latin = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")
_spaces = re.compile(r" {2,}")


class SepaCreditor(msgspec.Struct, frozen=True, kw_only=True):
    """The creditor of every SEPA collection: who Kovra collects as, and into which account.
    Validated on construction (a ValueError naming the bad value), so a bad configuration
    stops the process at start."""

    name: str
    identifier: str  # The SEPA creditor identifier (AT-02), e.g. DE98ZZZ09999999999.
    iban: str
    bic: str

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > name_length_max:
            raise ValueError(f"a SEPA creditor's name is 1 to {name_length_max} characters")
        check_creditor_identifier(self.identifier)
        try:
            iban, bic = IBAN(self.iban), BIC(self.bic)
        except SchwiftyException as error:
            raise ValueError(f"the SEPA creditor's account is not valid: {error}") from None
        if iban.country_code not in sepa_countries or bic.country_code != iban.country_code:
            raise ValueError("the SEPA creditor's IBAN and BIC are of one SEPA country")


def check_creditor_identifier(identifier: str) -> str:
    """The identifier in its compact form; ValueError saying why it is not a SEPA creditor
    identifier (AT-02: country, check digits, business code, national identifier)."""
    try:
        return str(at_02.validate(identifier))
    except ValidationError as error:
        raise ValueError(f"{identifier!r} is not a SEPA creditor identifier: {error}") from None


# Sandbox defaults: the test creditor identifier and account that German banks publish for
# testing; no real creditor's.
sandbox_creditor = SepaCreditor(
    name="Kovra Sandbox Collections",
    identifier="DE98ZZZ09999999999",
    iban="DE89370400440532013000",
    bic="COBADEFFXXX",
)


def sepa_text(text: str, *, length_max: int) -> str:
    """`text` in SEPA's Latin character set: transliterated, anything else a space, spaces
    collapsed, cut to `length_max`; a name that leaves nothing is `NOTPROVIDED`."""
    latin = _outside_sepa_latin.sub(" ", anyascii(text))
    collapsed = _spaces.sub(" ", latin).strip()[:length_max].strip()
    return collapsed or name_fallback


class SepaDirectDebit:
    """The SEPA Direct Debit CORE scheme for one creditor."""

    name = ProviderName.SEPA_DD
    currency = currency
    amount_max_minor = amount_max_minor
    mandate_cancelled_code = reason_codes.sepa_mandate_cancelled
    no_mandate_code = reason_codes.sepa_mandate_cancelled
    unspecified_code = reason_codes.sepa_unspecified
    invalid_amount_code = "AM02"
    invalid_currency_code = "AM03"

    def __init__(self, creditor: SepaCreditor) -> None:
        self._creditor = creditor

    @property
    def creditor(self) -> SepaCreditor:
        return self._creditor

    def validate_bank_details(self, bank_details: Mapping[str, str]) -> dict[str, str]:
        """`{iban, bic}`: a SEPA IBAN, and its BIC (derived when left out and derivable)."""
        only_fields(bank_details, bank_detail_fields, scheme="SEPA bank details")
        try:
            iban = IBAN(required_field(bank_details, "iban"))
        except SchwiftyException as error:
            raise InvalidBankDetails(
                "bank_details.iban", f"the IBAN is not valid: {error}"
            ) from None
        if iban.country_code not in sepa_countries:
            raise InvalidBankDetails(
                "bank_details.iban", f"the IBAN is from {iban.country_code}, outside SEPA"
            )
        given = optional_field(bank_details, "bic")
        if given is None:
            derived = iban.bic
            if derived is None:
                raise InvalidBankDetails(
                    "bank_details.bic", "bank_details.bic is required for this IBAN's bank"
                )
            return {"iban": iban.compact, "bic": derived.compact}
        try:
            bic = BIC(given)
        except SchwiftyException as error:
            raise InvalidBankDetails("bank_details.bic", f"the BIC is not valid: {error}") from None
        if bic.country_code != iban.country_code:
            raise InvalidBankDetails(
                "bank_details.bic",
                f"the BIC is of {bic.country_code}, the IBAN of {iban.country_code}",
            )
        return {"iban": iban.compact, "bic": bic.compact}

    def reason_description(self, reason_code: str) -> str:
        return reason_codes.describe(reason_codes.sepa_reasons, reason_code)

    def is_mandate_fatal(self, reason_code: str) -> bool:
        return reason_codes.is_fatal(reason_codes.sepa_reasons, reason_code)

    def knows_reason(self, reason_code: str) -> bool:
        return reason_code in reason_codes.sepa_reasons

    def collection_message(
        self, requests: Sequence[CollectionRequest], *, created_at: datetime.datetime
    ) -> bytes | None:
        """The run's pain.008 (None for an empty run)."""
        if not requests:
            return None
        return build_pain008(self._creditor, requests, created_at=created_at)


def message_id(requests: Sequence[CollectionRequest]) -> str:
    """The run's message id: a digest of its end-to-end ids, the same for the same run."""
    digest = hashlib.sha256("\n".join(r.end_to_end_id for r in requests).encode())
    return "KV" + digest.hexdigest()[:message_id_digest_hex].upper()


def _payment(request: CollectionRequest) -> dict[str, object]:
    payment: dict[str, object] = {
        "name": sepa_text(request.account_holder_name, length_max=name_length_max),
        "IBAN": request.bank_details["iban"],
        "amount": request.amount_minor,
        "type": sequence_codes[request.sequence_type],
        "collection_date": request.collection_date,
        "mandate_id": request.mandate_provider_reference,
        "mandate_date": request.mandate_signed_at.date(),
        "description": sepa_text(request.reference, length_max=remittance_length_max),
        "endtoend_id": request.end_to_end_id,
    }
    if request.bank_details.get("bic"):
        payment["BIC"] = request.bank_details["bic"]
    return payment


def build_pain008(
    creditor: SepaCreditor,
    requests: Sequence[CollectionRequest],
    *,
    created_at: datetime.datetime,
) -> bytes:
    """One pain.008 carrying every request, with a deterministic message and block ids."""
    config = {
        "name": sepa_text(creditor.name, length_max=name_length_max),
        "IBAN": creditor.iban,
        "BIC": creditor.bic,
        "batch": True,
        "creditor_id": creditor.identifier,
        "currency": currency,
    }
    document = SepaDD(config, schema=pain008_version, clean=False)
    for request in requests:
        if request.currency != currency:
            raise ValueError(f"a SEPA direct debit is in EUR, not {request.currency}")
        document.add_payment(_payment(request))
    built: bytes = document.export(validate=False)
    return _with_stable_ids(built, message_id(requests), created_at)


def _with_stable_ids(message: bytes, msg_id: str, created_at: datetime.datetime) -> bytes:
    """`sepaxml` stamps a random message id and the local time: replace them with the run's
    id, its blocks' ids derived from it, and `created_at` in UTC."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(message, parser)
    ns = {"p": pain008_namespace}
    header = root.find("p:CstmrDrctDbtInitn/p:GrpHdr", ns)
    if header is None:
        raise ValueError("sepaxml built a pain.008 without a group header")
    header.find("p:MsgId", ns).text = msg_id  # type: ignore[union-attr]
    stamp = created_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header.find("p:CreDtTm", ns).text = stamp  # type: ignore[union-attr]
    blocks = root.findall("p:CstmrDrctDbtInitn/p:PmtInf/p:PmtInfId", ns)
    for number, block in enumerate(blocks, start=1):
        block.text = f"{msg_id}-{number}"
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
