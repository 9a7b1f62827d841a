"""The `sqsloops` command: operate a deployed stack (register queues, scale, inspect) from a terminal or a script.

Every failure is one line on stderr and a non-zero exit: 2 for a bad command line, 1 for everything else
(validation, AWS). A bare `sqsloops` prints the help and exits 2, as the AWS CLI does (git exits 1): nothing that
was asked for was done, so a script whose command came out empty fails. A closed stdout (`sqsloops watch | head`)
ends any command quietly with 0: the reader has what it wanted (Python's "Note on SIGPIPE"). Each command group
lives in its own module and adds its subcommands to the parser.
"""

from __future__ import annotations

import os
import sys

from botocore.exceptions import BotoCoreError, ClientError

from sqsloops.cli.context import Context, quiet_logs
from sqsloops.cli.output import error
from sqsloops.cli.parser import build_parser
from sqsloops.errors import SqsloopsError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error already printed on one line (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    context = Context(stack_name=args.stack, region=args.region)
    try:
        with quiet_logs(verbose=args.verbose):
            code = int(args.run(context, args))
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
        return code
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_OK
    except SqsloopsError as exc:
        error(str(exc))
    except ClientError as exc:
        details = exc.response.get("Error", {})
        error(f"{details.get('Code', 'AWS error')}: {details.get('Message', exc)}")
    except BotoCoreError as exc:  # no credentials, no region, endpoint unreachable, bad parameter
        error(str(exc))
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    return EXIT_FAILURE


def _discard_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so what is still buffered cannot fail again when Python flushes it on
    exit (the recipe in the "Note on SIGPIPE" of Python's signal docs). A stdout without a descriptor (captured in a
    test) is left alone."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


__all__ = ["main"]
