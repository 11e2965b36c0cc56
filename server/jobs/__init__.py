"""Scoring jobs as remote workers see them over HTTP (remote.py: tokens, leases, validated results)."""
