"""A Lambda SQS handler that records each messageId it handled (one line each, appended to RECEIPTS_FILE).

It spends WORK_S per message so that a loop killed at a random moment is likely to be in the middle of a batch.
The file is the benchmark's probe (it lives on the same machine), not part of what is measured.
"""

import os
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records", [])
    time.sleep(float(os.environ.get("WORK_S", "0")) * len(records))
    lines = "".join(f"{record['messageId']}\n" for record in records)
    fd = os.open(os.environ["RECEIPTS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, lines.encode())
    finally:
        os.close(fd)
    return {"batchItemFailures": []}
