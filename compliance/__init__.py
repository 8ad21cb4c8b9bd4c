"""Compliance: sanctions screening, risk scoring, limits, cases, freezes and the audit trail.

Public: `decisions` (the one interface, `check(facts) -> decision`), `checks` (its
rule-based, no-op and cached variants), `limits` (daily limits and velocity), `setup` (the
check a process uses), `errors`; the sub-packages `sanctions`, `cases`, `freezes` and
`audit`. Private: `risk` (scoring, used by the checks)."""

__all__ = [
    "audit",
    "cases",
    "checks",
    "decisions",
    "errors",
    "freezes",
    "limits",
    "sanctions",
    "setup",
]
