"""Every request a crash test sends and the answer it got, kept for the checks at the end.

A crash test's claims are about answers: a transfer answered 201 must exist and end well, a
request refused with a 4xx must have left nothing, and only requests that got no answer (or
a 5xx) may have left something nobody was told about. So nothing is thrown away: each
request is journaled with its body, its Idempotency-Key and its answer, or `None` when the
connection broke or timed out before one came.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import httpx

request_timeout_seconds = 10.0


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One request and what came back."""

    path: str
    sent: dict[str, Any]
    idempotency_key: str | None
    # None: no answer at all (the gateway died, the connection broke, the wait ran out).
    status: int | None
    reply: Any  # The decoded JSON answer, or its text when it was not JSON; None unanswered.

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def created(self) -> bool:
        return self.status == 201

    @property
    def refused(self) -> bool:
        """A 4xx: the request was judged and refused, so it must have left nothing."""
        return self.status is not None and 400 <= self.status < 500

    @property
    def outcome_unknown(self) -> bool:
        """No answer, or a 5xx: it may or may not have done its work."""
        return self.status is None or self.status >= 500


class Journal:
    """The answers of one test, appended from any thread."""

    def __init__(self, base_url: str, *, api_key: str | None = None) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self._answers: list[Answer] = []
        self._lock = threading.Lock()

    def post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_seconds: float = request_timeout_seconds,
    ) -> Answer:
        """POST `body` to `path` (as the journal's tenant unless `headers` say otherwise)
        and journal what came back."""
        sent_headers = dict(headers or {"Authorization": f"Bearer {self.api_key}"})
        if idempotency_key is not None:
            sent_headers["Idempotency-Key"] = idempotency_key
        try:
            response = httpx.post(
                f"{self.base_url}{path}", json=body, headers=sent_headers, timeout=timeout_seconds
            )
        except httpx.HTTPError:
            answer = Answer(
                path=path, sent=body, idempotency_key=idempotency_key, status=None, reply=None
            )
        else:
            answer = Answer(
                path=path,
                sent=body,
                idempotency_key=idempotency_key,
                status=response.status_code,
                reply=_decoded(response),
            )
        with self._lock:
            self._answers.append(answer)
        return answer

    def of(self, path: str) -> list[Answer]:
        with self._lock:
            return [answer for answer in self._answers if answer.path == path]

    def summary(self) -> dict[str, dict[str, int]]:
        """Per path, how many answers of each status ("none": unanswered), for the report."""
        counts: dict[str, dict[str, int]] = {}
        with self._lock:
            for answer in self._answers:
                status = "none" if answer.status is None else str(answer.status)
                per_path = counts.setdefault(answer.path, {})
                per_path[status] = per_path.get(status, 0) + 1
        return counts


def _decoded(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
