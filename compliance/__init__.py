"""Compliance: sanctions screening, risk scoring, limits, cases and the audit trail."""
