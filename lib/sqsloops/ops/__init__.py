"""Operator tools that never run inside a loop: registration, alarms, stack discovery, read models, cost, demo."""
