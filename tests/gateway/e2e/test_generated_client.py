"""A partner can generate a client from the OpenAPI document the server serves and pay with it.

The test fetches `/schema/openapi.json` from the real deployment, runs `openapi-python-client`
on it into a temporary directory (generated code is never committed: the document is the
contract, the client is what a partner makes of it), requires the generator to finish without
a warning (a warning means an operation or a response was left out of the client), imports
the package and, with its typed models only, deposits, quotes, creates a recipient, pays, and
reads the transfer back.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.gateway.e2e.conftest import Deployment

package_name = "kovra_generated_client"
generator = Path(sys.executable).with_name("openapi-python-client")
generator_timeout_seconds = 120
deposit_minor = 5_000_000
payment_minor = 120_000
liquidity_minor = {"EUR": 10**12, "GBP": 10**12}
generator_config = f"""\
project_name_override: kovra-generated-client
package_name_override: {package_name}
post_hooks: []
# A batch may also be uploaded as a CSV file, and a bank statement is an XML file; the
# generator sends file uploads as octet streams, and a partner's configuration maps the
# one to the other.
content_type_overrides:
  text/csv: application/octet-stream
  application/xml: application/octet-stream
  text/xml: application/octet-stream
"""


def generate_client(document_url: str, directory: Path) -> str:
    """Generate the client package from the served document into `directory`; the
    generator's output, which must not warn."""
    document_path = directory / "openapi.json"
    document_path.write_bytes(httpx.get(document_url, timeout=30).content)
    config_path = directory / "generator.yaml"
    config_path.write_text(generator_config)
    generated = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(document_path),
            "--output-path",
            str(directory / package_name),
            "--meta",
            "none",
            "--config",
            str(config_path),
        ],
        capture_output=True,
        text=True,
        timeout=generator_timeout_seconds,
        check=False,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "warning" not in output.lower(), output
    return output


@pytest.fixture
def client_package(deployment: Deployment, tmp_path: Path) -> Iterator[ModuleType]:
    generate_client(f"{deployment.base_url}/schema/openapi.json", tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(package_name)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == package_name]:
            del sys.modules[name]


def operation(package: ModuleType, name: str) -> ModuleType:
    """One generated operation module, e.g. `deposits.v1_deposits_create_deposit`."""
    return importlib.import_module(f"{package.__name__}.api.{name}")


def test_a_client_generated_from_the_served_document_pays_a_recipient(
    deployment: Deployment, client_package: ModuleType
) -> None:
    models = importlib.import_module(f"{package_name}.models")
    deployment.fund_liquidity(liquidity_minor)
    _, api_key = deployment.tenant(name="generated-client")
    client = client_package.AuthenticatedClient(
        base_url=deployment.base_url, token=api_key, raise_on_unexpected_status=True
    )
    with client:
        deposit = operation(client_package, "deposits.v1_deposits_create_deposit").sync(
            client=client,
            body=models.DepositCreate(currency=models.Currency.EUR, amount=deposit_minor),
        )
        assert isinstance(deposit, models.Deposit), deposit
        assert (deposit.currency, deposit.amount) == ("EUR", deposit_minor)
        quote = operation(client_package, "quotes.v1_quotes_create_quote").sync(
            client=client,
            body=models.QuoteCreate(
                source_currency=models.Currency.EUR,
                target_currency=models.Currency.GBP,
                source_amount=payment_minor,
            ),
        )
        assert isinstance(quote, models.Quote), quote
        assert quote.source_amount == payment_minor
        assert quote.target_amount > 0
        recipient = operation(client_package, "recipients.v1_recipients_create_recipient_route")
        created_recipient = recipient.sync(
            client=client,
            body=models.RecipientCreate.from_dict(
                {
                    "name": "Supplier Ltd",
                    "country": "GB",
                    "currency": "GBP",
                    "bank_details": {"sort_code": "08-99-99", "account_number": "66374958"},
                }
            ),
        )
        assert isinstance(created_recipient, models.Recipient), created_recipient
        create = operation(client_package, "transfers.v1_transfers_create_transfer_route")
        transfer = create.sync(
            client=client,
            body=models.TransferCreate(
                quote_id=quote.id, recipient_id=created_recipient.id, reference="INV-GEN-1"
            ),
        )
        assert isinstance(transfer, models.Transfer), transfer
        read = operation(client_package, "transfers.v1_transfers_transfer_id_read_transfer")
        read_back = read.sync(transfer.id, client=client)
        assert isinstance(read_back, models.Transfer), read_back
        assert read_back.id == transfer.id
        assert read_back.quote_id == quote.id
        assert read_back.recipient_id == created_recipient.id
        assert (read_back.source.currency, read_back.source.amount) == ("EUR", payment_minor)
        assert read_back.target.amount == quote.target_amount
        assert isinstance(read_back.status, models.TransferStatus)
