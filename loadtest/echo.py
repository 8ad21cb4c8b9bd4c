"""The bare ceiling: a Litestar app with one msgspec echo endpoint and nothing else.

Served by granian with the very same settings as the gateway (and the same garbage
collector settings, `gateway.infra.garbage_collection`), it measures what the server, the
framework and msgspec cost on this machine, so the gateway's figures can be read as a ratio
of that ceiling rather than as absolute numbers of a shared two-core box.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, post
from msgspec import Meta

from gateway.infra.garbage_collection import tune_garbage_collection


class EchoBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: Annotated[str, Meta(pattern="^[A-Z]{3}$")]
    amount: Annotated[int, Meta(ge=1)]
    reference: Annotated[str, Meta(max_length=140)] | None = None


_decoder = msgspec.json.Decoder(EchoBody)
_encoder = msgspec.json.Encoder()


@post("/echo")
async def echo(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = _decoder.decode(await request.body())
    return Response(content=_encoder.encode(body), status_code=201, media_type="application/json")


def create_echo_app(*, tune_collector: bool = True) -> Litestar:
    """The app granian serves; tests leave their own process's collector alone."""
    return Litestar(
        route_handlers=[echo], on_startup=[tune_garbage_collection] if tune_collector else []
    )
