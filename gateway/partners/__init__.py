"""Partners (SPEC §11): the institutions a customer's bucket money is paid on to, configured
by the tenant, and the service the orchestration sends partner orders through.

Public: `service` (`Partners`, `PartnerRecord`, the production resolver), `routes`, `wire`,
`errors`. Private: `records`."""

__all__ = ["errors", "routes", "service", "wire"]
