"""Bank statements in: camt.053 statements and camt.054 debit/credit notifications of the
platform's settlement accounts, read with a hardened XML parser and held to the official
ISO 20022 schemas before anything of them is believed. Every module here is public."""

__all__ = ["camt"]
