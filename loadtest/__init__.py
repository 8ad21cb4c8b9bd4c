"""The locust load-test suite and the side-by-side gateway benchmark."""
