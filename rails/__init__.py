"""Regional payment rails: EU, UK and ID adapters, ISO 20022 messages, bank-detail checks."""
