"""The stack's example app: the jobs `sqsloops demo jobs` runs (app/jobs.py), shipped as the App layer."""
