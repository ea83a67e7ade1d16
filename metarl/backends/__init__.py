"""Batched environment backends behind ``make_batched_env`` (see DESIGN.md)."""
