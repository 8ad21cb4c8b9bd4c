"""Regional payment rails: EU, UK and ID adapters, ISO 20022 messages, bank-detail checks,
and the sandbox rails with their memory of the payments they received. Every module here is
public."""

__all__ = [
    "adapter",
    "bank_details",
    "corridors",
    "iso20022",
    "memory",
    "redis_memory",
    "resilience",
    "sandbox",
]
