"""Partner institutions that receive bucket money (SPEC §11), behind one interface.

Public: `partner` (the interface: orders, receipts, the two errors)."""

__all__ = ["partner"]
