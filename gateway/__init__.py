"""The HTTP gateway, its CLI, and the orchestration of Kovra's money flows."""
