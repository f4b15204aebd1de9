"""Tests that run the service across several network namespaces, as if on several machines."""
