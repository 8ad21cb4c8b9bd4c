"""Operations: what Kovra leaves to a person rather than to a guess (exceptions), and the
admin plane's view of it. Every module here is public."""

__all__ = ["errors", "records", "routes", "service", "wire"]
