"""The HTTP gateway: the app, its runtime, the domains it serves, its jobs and tooling.

Public: `app` (the Litestar factory granian runs), `runtime` (a process's connections and
each domain's service), `settings` (configuration). `ops` (the ops plane's routes) is the
app's own. Every sub-package names its own public modules."""

__all__ = ["app", "runtime", "settings"]
