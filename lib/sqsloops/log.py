"""Structured JSON logs (Powertools): one logger for the package, keyed by queue, token and loop id in the loop."""

from __future__ import annotations

from aws_lambda_powertools import Logger

SERVICE = "sqsloops"

logger = Logger(service=SERVICE)
