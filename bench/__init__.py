"""Packyard's benchmarks: timing and memory targets, measured against a real server.

Run them with ``./dev bench [NAME ...]`` or ``.venv/bin/python -m bench [NAME ...]`` from the
repository root; ``--list`` shows what exists. Benchmarks report figures and whether their goals
were met; they never fail on a missed goal (tests don't assert timings either), only when the
thing being measured broke.
"""
