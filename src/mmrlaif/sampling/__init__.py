"""Deconfounded candidate sampling from the current policy, with per-sample seeds."""
