"""Tenants, their API keys and their pricing and limit policies: the admin plane's own domain."""
