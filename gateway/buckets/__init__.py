"""Buckets and allocation rules (SPEC §11): a customer's buckets are sub-accounts of the
tenant's wallet, and the customer's rules split collected money into them; a preview shows
the split without moving money, and an orchestration run records its plan here.

Public: `service` (`Buckets`, `AllocationLine`, `AllocationPlan`, `line_id_for`), `rules`
(the rules model and the pure `evaluate`), `routes`, `wire`, `errors`. Private: `records`,
`views`."""

__all__ = ["errors", "routes", "rules", "service", "wire"]
