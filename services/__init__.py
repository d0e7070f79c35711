"""Mounted as a subpackage of ctloop; see setup.py."""
