"""The JSON shape of a freeze: a tenant's or a recipient's status."""

from __future__ import annotations

from typing import Literal

import msgspec


class TenantStatusUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: Literal["active", "frozen"]
