"""Regional payment rails: EU, UK and ID adapters, ISO 20022 messages, bank-detail checks.
Every module here is public."""

__all__ = ["adapter", "bank_details", "corridors", "iso20022", "sandbox"]
