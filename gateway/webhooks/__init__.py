"""Signed webhooks: tenants' endpoints, the delivery worker, retries and dead letters."""
