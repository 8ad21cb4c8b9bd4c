"""The batch domain's operating errors, each with a stable `code` (mapped to problems by
`gateway.http.problems`). A refused item of a batch that is not atomic is no error: it is
an item result (`gateway.batches.wire.ItemError`)."""

from __future__ import annotations

from ledger.errors import DomainError


class BatchAbandoned(DomainError):
    """An earlier attempt of this batch was undone after a failure (by the repair); the
    client submits it again under a new Idempotency-Key."""

    code = "batch_abandoned"


class BatchRejected(DomainError):
    """An atomic batch with at least one refused item: nothing of it moved."""

    code = "batch_rejected"

    def __init__(self, detail: str, *, items: list[tuple[str, str]]) -> None:
        super().__init__(detail)
        self.items = items

    def field_errors(self) -> list[tuple[str, str]]:
        """Each refused item's field (`items[3].recipient_id`) and what is wrong with it."""
        return list(self.items)


class MalformedCsv(DomainError):
    """A CSV batch body that cannot be read as CSV (not UTF-8, a NUL, or broken quoting): nothing
    of it was parsed."""

    code = "malformed_csv"


class InvalidBatch(DomainError):
    """A body that is not a batch at all (a CSV header without the expected columns, no
    rows, too many rows): refused as a whole, naming the fields at fault."""

    code = "validation_error"

    def __init__(self, detail: str, *, fields: list[tuple[str, str]]) -> None:
        super().__init__(detail)
        self.fields = fields

    def field_errors(self) -> list[tuple[str, str]]:
        """Each field at fault (`items`, or a missing column) and what is wrong with it."""
        return list(self.fields)
