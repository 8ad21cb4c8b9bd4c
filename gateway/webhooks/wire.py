"""Wire types of webhooks: the API's endpoint and event objects, and the body we send."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from gateway.http.wire import Timestamp
from gateway.webhooks.catalog import enabled_events_max, filters
from gateway.webhooks.destinations import url_length_max, url_shape_pattern
from gateway.webhooks.records.endpoints import (
    in_flight_max_ceiling,
    in_flight_max_default,
    rotation_overlap_seconds_max,
)

# The catalog's filters; `routes._checked_filters` refuses any other naming it, so the schema
# lists them rather than msgspec (whose error would not).
EventFilter = Annotated[
    str, Meta(min_length=1, max_length=64, extra_json_schema={"enum": list(filters)})
]
# The shape the schema can say; `destinations.parse_url` checks the rest (a host, no
# credentials or fragment, https and a public address in production) as `invalid_webhook_url`.
Url = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=url_length_max,
        extra_json_schema={"pattern": url_shape_pattern},
    ),
]
EventFilters = Annotated[list[EventFilter], Meta(min_length=1, max_length=enabled_events_max)]
Description = Annotated[str, Meta(max_length=200)]
# Attempts in flight to the endpoint at once, across every delivery worker.
InFlightMax = Annotated[int, Meta(ge=1, le=in_flight_max_ceiling)]


class EndpointCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Url
    enabled_events: EventFilters = msgspec.field(default_factory=lambda: ["*"])
    description: Description | None = None
    in_flight_max: InFlightMax = in_flight_max_default


class EndpointUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A PATCH: each field given is set, each left out keeps its value."""

    url: Url | msgspec.UnsetType = msgspec.UNSET
    enabled_events: EventFilters | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    in_flight_max: InFlightMax | msgspec.UnsetType = msgspec.UNSET


class SecretRotate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # How long the old secret keeps signing next to the new one; 0 retires it at once.
    overlap_seconds: Annotated[int, Meta(ge=0, le=rotation_overlap_seconds_max)] = 24 * 3600


class Redeliver(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # One endpoint (`we_...`), or every endpoint of the tenant that takes the event.
    endpoint_id: Annotated[str, Meta(max_length=64)] | None = None


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "webhook_endpoint"
    url: str
    description: str | None
    enabled_events: list[str]
    in_flight_max: int
    status: str
    created_at: Timestamp
    # The signing secret is shown when it is made (creation, rotation) and never again.
    secret: str | None = None
    previous_secret_expires_at: Timestamp | None = None


class EndpointPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Endpoint]
    next_cursor: str | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "webhook_delivery"
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: Timestamp | None
    last_attempt_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: Timestamp | None


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: str = "event"
    type: str
    created_at: Timestamp
    data: dict[str, Any]
    deliveries: list[Delivery] | None = None


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Event]
    next_cursor: str | None


class DeliveryList(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Delivery]


class WebhookBody(msgspec.Struct, frozen=True, kw_only=True):
    """What a receiver gets: Standard Webhooks' `type`, `timestamp` and `data`, plus the
    event id, which stays the same across endpoints and redeliveries."""

    id: str
    type: str
    timestamp: Timestamp
    data: dict[str, Any]
