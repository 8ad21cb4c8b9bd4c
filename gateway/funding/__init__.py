"""Production funding: the settlement bank account per currency and the funding instructions
that point tenants at it, and the bank statements (camt.053/054) whose credit entries fund
the wallets their references name, or land in suspense for a person to settle.

Public: `accounts` (the settlement accounts, read by the settings), `references` (the
tenants' funding references), `service` (`Funding`), `routes`, `wire`, `errors`. Private:
`records`."""

__all__ = ["accounts", "errors", "references", "routes", "service", "wire"]
