"""What a command runs against: the AWS session, the stack's settings and the registration service, built lazily."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

from sqsloops.clients import Clients
from sqsloops.log import SERVICE
from sqsloops.ops.registration import QueueAdmin
from sqsloops.ops.root import OpsRoot
from sqsloops.ops.stack import resolve_settings
from sqsloops.settings import Settings


class Context:
    """Built before any command runs, it touches AWS only when a command asks for something."""

    def __init__(self, *, stack_name: str | None = None, region: str | None = None) -> None:
        self.stack_name = stack_name
        self.region = region

    @cached_property
    def clients(self) -> Clients:
        return Clients(region=self.region)

    @cached_property
    def settings(self) -> Settings:
        return resolve_settings(stack_name=self.stack_name, cloudformation=lambda: self.clients.cloudformation)

    @cached_property
    def root(self) -> OpsRoot:
        return OpsRoot(self.settings, clients=self.clients)

    @property
    def registrations(self) -> QueueAdmin:
        return self.root.admin


@contextmanager
def quiet_logs(*, verbose: bool) -> Iterator[None]:
    """The package's JSON logs are for Lambda: in a terminal only errors show (all of them with -v), on stderr."""
    log = logging.getLogger(SERVICE)
    level = log.level
    streams = [(h, h.stream) for h in log.handlers if isinstance(h, logging.StreamHandler)]
    log.setLevel(logging.INFO if verbose else logging.ERROR)
    for handler, _ in streams:
        handler.setStream(sys.stderr)
    try:
        yield
    finally:
        log.setLevel(level)
        for handler, stream in streams:
            handler.setStream(stream)
