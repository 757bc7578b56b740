"""Helpers the tests share: running commands as a user would, writing the user's kinds
of files, and reading TensorBoard's events back with TensorBoard's own reader.

Fixtures stay in tests/conftest.py; plain functions live here, one module per kind.
"""
