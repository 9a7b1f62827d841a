"""The Loops table: one token per loop that should run, and the conditional writes that keep loops honest.

A loop holds (token, loop_id). It may run only while its token exists and still carries its loop_id:
scale-down retires tokens, the restart sweep re-issues a loop_id when it takes a stale token over.

Within one loop_id, every invocation has a hop number (its payload's `hop`) and claims the token for it before it
receives anything: a conditional write that moves the token's `hop` from hop - 1 to hop. The starter of a loop
(create, take_over: hop 0) sends hop 1; each hand-over sends its own hop + 1. A second delivery of the same event
(Lambda may deliver an asynchronous event twice; a retried Invoke whose first attempt got through) finds the hop
already claimed and stops; every heartbeat also requires the token's hop to be the invocation's own, so an older
invocation still running after a newer one claimed stops too. One consumer per slot, even when events repeat.

A token's id is its slot (slot-0000, slot-0001, ...), created only if that slot is free. Scale-ups that race can
therefore only compete for the same slots below max_loops, never add up beyond it: the bound holds by construction.

Retire, don't delete: a scaled-down loop runs on until its next heartbeat check, so its slot must not get a new loop
before then, or one slot would have two consumers (two, with max_loops 1). A retired token keeps its slot, carries
a loop_id no loop holds (so the old loop's heartbeat fails) and a `reusable_at` (see `retirement_grace_s`) before
which nobody may create a token in that slot. Retired tokens are not loops: list() and count() leave them out.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sqsloops import scaling
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import HopClaimedError, TokenLostError
from sqsloops.log import logger
from sqsloops.transient import call_aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SLOT_PREFIX = "slot-"
RETIRED = "retired"  # the loop_id of a retired token: never a loop's (those are uuid4 hex)
# Decided in sqsloops.scaling (the stale bound, one formula); named here too, where the loop and the fleet look.
LONG_POLL_FLOOR_S = scaling.LONG_POLL_FLOOR_S
retirement_grace_s = scaling.retirement_grace_s


def slot_name(slot: int) -> str:
    """The token id of a slot: zero-padded, so ids sort in slot order."""
    if slot < 0:
        raise ValueError(f"a slot is a non-negative integer, got {slot}")
    return f"{SLOT_PREFIX}{slot:04d}"


def slot_index_of(token: str) -> int | None:
    """The slot a token id names; None when it names none (such a token is beyond every slot)."""
    digits = token.removeprefix(SLOT_PREFIX)
    if digits == token or not digits.isascii() or not digits.isdigit():
        return None
    slot = int(digits)
    return slot if slot_name(slot) == token else None


class UnreadableTokenError(ValueError):
    """A Loops item whose attributes cannot be read as a token (written by hand, or by a handler in the loop's role)."""

    def __init__(self, key: str, error: str) -> None:
        super().__init__(f"token item {key} cannot be read: {error}")
        self.key = key


def _key_of(item: dict[str, Any]) -> str:
    """An item's key, as a log line shows it, whatever its attributes hold."""
    parts = []
    for name in ("queue_url", "token"):
        attr = item.get(name)
        parts.append(str(attr.get("S", attr)) if isinstance(attr, dict) else repr(attr))
    return "/".join(parts)[:500]


def read_tokens(
    items: Iterable[dict[str, Any]], unreadable: list[UnreadableTokenError] | None = None
) -> Iterator[Token]:
    """Each item read in its own guard: an unreadable one is logged with its key (and added to `unreadable`, when
    given) and skipped, so one bad item never stops a listing or the sweep.

    A live loop's next heartbeat rewrites last_used (and a retirement its loop_id), which mends the usual damage.
    """
    for item in items:
        try:
            yield Token.from_item(item)
        except UnreadableTokenError as exc:
            logger.error("unreadable token item skipped", extra={"key": exc.key, "error": str(exc)})
            if unreadable is not None:
                unreadable.append(exc)


@dataclass(frozen=True, kw_only=True)
class Token:
    """One loop that should run, as the Loops table holds it."""

    queue_url: str
    slot: str  # the slot's name, slot-0000 and up: the Loops table's sort key `token`
    loop_id: str
    created_at: float
    last_used: float
    processed: int = 0
    failed: int = 0
    invocations: int = 0
    retired_at: float | None = None  # set when scale-down retired the token: its loop is stopping
    reusable_at: float | None = None  # a retired slot may get a new token only after this (epoch seconds)
    hop: int = 0  # the last invocation that claimed the token under this loop_id (0: none yet, it is starting)
    claimed_request: str | None = None  # the Lambda request id of that invocation, when it had one

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Token:
        """The token an item holds; UnreadableTokenError (naming its key) if an attribute has the wrong type."""
        try:

            def number(name: str) -> float:
                return float(item[name]["N"]) if name in item else 0.0

            def optional(name: str) -> float | None:
                return float(item[name]["N"]) if name in item else None

            return cls(
                queue_url=item["queue_url"]["S"],
                slot=item["token"]["S"],
                loop_id=item.get("loop_id", {}).get("S", ""),
                created_at=number("created_at"),
                last_used=number("last_used"),
                processed=int(number("processed")),
                failed=int(number("failed")),
                invocations=int(number("invocations")),
                retired_at=optional("retired_at"),
                reusable_at=optional("reusable_at"),
                hop=int(number("hop")),
                claimed_request=item["claimed_request"]["S"] if "claimed_request" in item else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise UnreadableTokenError(_key_of(item), f"{type(exc).__name__}: {exc}") from exc

    @property
    def retired(self) -> bool:
        """Scaled down: no loop may run under it, and it is not counted as a loop."""
        return self.retired_at is not None or self.loop_id == RETIRED

    def reusable(self, now: float) -> bool:
        """A retired token whose grace has passed: its slot may get a new token (what create() checks)."""
        return self.retired and self.reusable_at is not None and self.reusable_at < now

    @property
    def slot_index(self) -> int | None:
        return slot_index_of(self.slot)

    def is_stale(self, now: float, stale_after_s: float) -> bool:
        """No live loop holds it: see sqsloops.scaling.is_stale."""
        return scaling.is_stale(self.last_used, now, stale_after_s=stale_after_s)

    def payload(self) -> dict[str, str | int]:
        """The event of the token's next invocation: what it needs to find its token and claim it (hop + 1)."""
        return {"queue_url": self.queue_url, "token": self.slot, "loop_id": self.loop_id, "hop": self.hop + 1}


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _item_found(exc: ClientError) -> dict[str, Any]:
    """The item a failed condition saw (ReturnValuesOnConditionCheckFailure=ALL_OLD); empty when there was none."""
    found: dict[str, Any] = cast(dict[str, Any], exc.response).get("Item", {})
    return found


def _lost(exc: ClientError, queue_url: str, token: str, loop_id: str, hop: int | None) -> TokenLostError:
    """Why a write conditional on (loop_id, hop) failed: another hop holds the token, or it is not this loop's."""
    found = _item_found(exc)
    if hop is not None and found.get("loop_id", {}).get("S") == loop_id:
        return HopClaimedError(queue_url, token, loop_id, hop=hop, found_hop=int(found.get("hop", {}).get("N", "0")))
    return TokenLostError(queue_url, token, loop_id)


class Tokens:
    """Creates, proves, takes over, retires, deletes and counts loop tokens."""

    def __init__(self, *, table_name: str, dynamodb: DynamoDBClient, clock: Clock = SYSTEM_CLOCK) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self._clock = clock

    def _key(self, queue_url: str, token: str) -> dict[str, Any]:
        return {"queue_url": {"S": queue_url}, "token": {"S": token}}

    def create(self, queue_url: str, *, slot: int) -> Token | None:
        """Take a free slot: a new token with last_used set now (so the sweep never races a loop that is starting).

        A slot is free when it has no token, or a retired one whose grace has passed (reusable_at < now).
        None when the slot is taken (someone else created it and starts its loop, so the caller must not) or
        retired and still in its grace (its old loop may still be consuming).
        """
        now = self._clock.now()
        token = Token(
            queue_url=queue_url,
            slot=slot_name(slot),
            loop_id=uuid.uuid4().hex,
            created_at=now,
            last_used=now,
        )
        item = {
            **self._key(queue_url, token.slot),
            "loop_id": {"S": token.loop_id},
            "created_at": {"N": repr(now)},
            "last_used": {"N": repr(now)},
            "processed": {"N": "0"},
            "failed": {"N": "0"},
            "invocations": {"N": "0"},
            "hop": {"N": "0"},
        }
        try:
            call_aws(
                lambda: self._ddb.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#t) OR reusable_at < :now",
                    ExpressionAttributeNames={"#t": "token"},
                    ExpressionAttributeValues={":now": {"N": repr(now)}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            # Ours after all when a retry follows a write whose response was lost: the item carries our loop_id.
            return token if _item_found(exc).get("loop_id", {}).get("S") == token.loop_id else None
        return token

    def claim(
        self,
        queue_url: str,
        token: str,
        loop_id: str,
        *,
        hop: int,
        invocation_id: str,
        request_id: str | None = None,
        processed: int = 0,
        failed: int = 0,
        invocations: int = 0,
    ) -> None:
        """An invocation's first heartbeat: take the token for `hop`, only if the last claim was hop - 1.

        Hop 1 also claims a token written before hops existed (no `hop` attribute). HopClaimedError if this loop's
        token is at another hop: hop or later was claimed already (this event is a repeat, or late), or hop - 1
        never was. TokenLostError if the token is gone or carries another loop_id. TransientAwsError as heartbeat().
        `invocation_id` tells a retried claim whose first attempt went through unseen from a repeated event's; it is
        made per invocation, never Lambda's request id, which a repeated delivery of one event may share.
        `request_id` (the invocation's aws_request_id) is kept as `claimed_request`, so the restart function can
        tell whether a failed invocation's record is about the one that holds the hop (sqsloops.restart.revive).
        """
        previous = "hop = :previous OR attribute_not_exists(hop)" if hop == 1 else "hop = :previous"
        claimed = "claimed_by = :me, claimed_request = :request" if request_id else "claimed_by = :me"
        update = f"SET last_used = :now, hop = :hop, {claimed} ADD #p :p, #f :f, #i :i"
        if not request_id:
            update += " REMOVE claimed_request"
        extra = {":request": {"S": request_id}} if request_id else {}
        try:
            call_aws(
                lambda: self._ddb.update_item(
                    TableName=self._table,
                    Key=self._key(queue_url, token),
                    UpdateExpression=update,
                    ConditionExpression=f"attribute_exists(#t) AND loop_id = :mine AND ({previous})",
                    ExpressionAttributeNames={"#t": "token", "#p": "processed", "#f": "failed", "#i": "invocations"},
                    ExpressionAttributeValues={
                        ":now": {"N": repr(self._clock.now())},
                        ":mine": {"S": loop_id},
                        ":hop": {"N": str(hop)},
                        ":previous": {"N": str(hop - 1)},
                        ":me": {"S": invocation_id},
                        ":p": {"N": str(processed)},
                        ":f": {"N": str(failed)},
                        ":i": {"N": str(invocations)},
                        **extra,
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            found = _item_found(exc)
            mine = (found.get("loop_id", {}).get("S"), found.get("hop", {}).get("N"), found.get("claimed_by", {}))
            if mine == (loop_id, str(hop), {"S": invocation_id}):
                return  # a retry of our own claim, whose first attempt (counters included) went through unseen
            raise _lost(exc, queue_url, token, loop_id, hop) from exc

    def heartbeat(
        self,
        queue_url: str,
        token: str,
        loop_id: str,
        *,
        processed: int = 0,
        failed: int = 0,
        invocations: int = 0,
        hop: int | None = None,
    ) -> None:
        """Prove the loop is still wanted (and, given `hop`, that no later invocation claimed it), add its counters.

        TokenLostError if the token is gone or carries another loop_id, HopClaimedError (one) if it is at another
        hop: the caller must stop. TransientAwsError if DynamoDB kept throttling or failing within the client's
        budget: the caller must carry on and try again. Loops always pass their hop; without one (an operator's
        tool) the heartbeat is fenced by the loop_id alone.
        """
        condition = "attribute_exists(#t) AND loop_id = :mine"
        values = {
            ":now": {"N": repr(self._clock.now())},
            ":mine": {"S": loop_id},
            ":p": {"N": str(processed)},
            ":f": {"N": str(failed)},
            ":i": {"N": str(invocations)},
        }
        if hop is not None:
            condition += " AND hop = :hop"
            values[":hop"] = {"N": str(hop)}
        try:
            call_aws(
                lambda: self._ddb.update_item(
                    TableName=self._table,
                    Key=self._key(queue_url, token),
                    # "processed" is a DynamoDB reserved word: every counter goes through a name placeholder.
                    UpdateExpression="SET last_used = :now ADD #p :p, #f :f, #i :i",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#t": "token", "#p": "processed", "#f": "failed", "#i": "invocations"},
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise _lost(exc, queue_url, token, loop_id, hop) from exc
            raise

    def take_over(self, stale: Token) -> Token:
        """Give a stale token a fresh loop_id (at hop 0: its first invocation claims hop 1), only if nobody else did
        since it was read.

        Two sweepers racing on the same token: exactly one wins, the other gets TokenLostError.
        """
        now = self._clock.now()
        new_loop_id = uuid.uuid4().hex
        try:
            call_aws(
                lambda: self._ddb.update_item(
                    TableName=self._table,
                    Key=self._key(stale.queue_url, stale.slot),
                    UpdateExpression=(
                        "SET loop_id = :new, last_used = :now, hop = :zero REMOVE claimed_by, claimed_request"
                    ),
                    ConditionExpression="attribute_exists(#t) AND loop_id = :old AND last_used = :seen"
                    " AND attribute_not_exists(retired_at)",
                    ExpressionAttributeNames={"#t": "token"},
                    ExpressionAttributeValues={
                        ":new": {"S": new_loop_id},
                        ":now": {"N": repr(now)},
                        ":old": {"S": stale.loop_id},
                        ":seen": {"N": repr(stale.last_used)},
                        ":zero": {"N": "0"},
                    },
                )
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise TokenLostError(stale.queue_url, stale.slot, stale.loop_id) from exc
            raise
        return Token(
            queue_url=stale.queue_url,
            slot=stale.slot,
            loop_id=new_loop_id,
            created_at=stale.created_at,
            last_used=now,
            processed=stale.processed,
            failed=stale.failed,
            invocations=stale.invocations,
        )

    def retire(self, queue_url: str, token: str, *, grace_s: float) -> bool:
        """Stop a token's loop and keep its slot from new loops for grace_s (see `retirement_grace_s`).

        The loop fails its next heartbeat (loop_id is now RETIRED) and stops. False if the token is gone or was
        already retired (an earlier retirement's grace is kept, not extended; a racing retirement counts once).
        A retried write whose first attempt succeeded unseen also answers False: the token is retired all the same.
        """
        now = self._clock.now()
        try:
            call_aws(
                lambda: self._ddb.update_item(
                    TableName=self._table,
                    Key=self._key(queue_url, token),
                    UpdateExpression="SET loop_id = :retired, retired_at = :now, reusable_at = :reusable",
                    ConditionExpression="attribute_exists(#t) AND attribute_not_exists(retired_at)",
                    ExpressionAttributeNames={"#t": "token"},
                    ExpressionAttributeValues={
                        ":retired": {"S": RETIRED},
                        ":now": {"N": repr(now)},
                        ":reusable": {"N": repr(now + grace_s)},
                    },
                )
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def purge(self, retired: Token) -> bool:
        """Delete a retired token whose grace has passed (the sweep's tidy-up); False if it is not that any more.

        Conditional on the retirement read, so a token that create() has meanwhile reclaimed for a new loop stays.
        """
        if retired.reusable_at is None or not retired.reusable(self._clock.now()):
            return False
        try:
            call_aws(
                lambda: self._ddb.delete_item(
                    TableName=self._table,
                    Key=self._key(retired.queue_url, retired.slot),
                    ConditionExpression="loop_id = :retired AND reusable_at = :seen",
                    ExpressionAttributeValues={
                        ":retired": {"S": RETIRED},
                        ":seen": {"N": repr(retired.reusable_at)},
                    },
                )
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def delete(self, queue_url: str, token: str) -> bool:
        """Delete one token outright; False if it was already gone.

        Its loop stops at its next heartbeat, but the slot is free at once: to stop a loop, retire() its token.
        """
        old = call_aws(
            lambda: self._ddb.delete_item(
                TableName=self._table, Key=self._key(queue_url, token), ReturnValues="ALL_OLD"
            )
        )
        return "Attributes" in old

    def list(self, queue_url: str, *, live: bool = True) -> list[Token]:
        """The loops of one queue (live=False: retired tokens too), oldest first (consistent read, paginated)."""
        paginator = self._ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="queue_url = :q",
            ExpressionAttributeValues={":q": {"S": queue_url}},
            ConsistentRead=True,
        )
        tokens = list(read_tokens(item for page in pages for item in page.get("Items", [])))
        return sorted((t for t in tokens if not (live and t.retired)), key=lambda t: (t.created_at, t.slot))

    def count(self, queue_url: str) -> int:
        """How many loops a queue has: its tokens that are not retired."""
        paginator = self._ddb.get_paginator("query")
        return sum(
            page.get("Count", 0)
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="queue_url = :q",
                FilterExpression="attribute_not_exists(retired_at) AND loop_id <> :retired",
                ExpressionAttributeValues={":q": {"S": queue_url}, ":retired": {"S": RETIRED}},
                ConsistentRead=True,
                Select="COUNT",
            )
        )

    def scan(
        self, *, page_size: int | None = None, unreadable: builtins.list[UnreadableTokenError] | None = None
    ) -> Iterator[Token]:
        """Every token of every queue, retired ones included (consistent, paginated): the restart sweep's view.

        An item that cannot be read is skipped (see `read_tokens`; given `unreadable`, added to it).
        """
        paginator = self._ddb.get_paginator("scan")
        options: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        if page_size:
            options["PaginationConfig"] = {"PageSize": page_size}
        pages = paginator.paginate(**options)
        yield from read_tokens((item for page in pages for item in page.get("Items", [])), unreadable)

    def stale(self, *, stale_after_s: float, page_size: int | None = None) -> Iterator[Token]:
        """Live tokens whose loop has not proved itself for longer than stale_after_s."""
        now = self._clock.now()
        return (t for t in self.scan(page_size=page_size) if not t.retired and t.is_stale(now, stale_after_s))
