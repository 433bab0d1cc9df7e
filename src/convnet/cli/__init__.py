"""The ``convnet`` command line. Errors print one line (``convnet: error: ...``) and exit 1
(set CONVNET_TRACEBACK=1 for the full traceback); bad arguments exit 2 with the command's usage; a
training run interrupted by Ctrl-C or SIGTERM saves and exits 130 or 143.

`parser` reads the arguments, `commands` and `training` run them, `reference` writes docs/cli.md
from the parser.
"""

import os
import sys

from ..errors import ConvnetError
from .commands import EXIT_ERROR
from .parser import build_parser

EXIT_INTERRUPTED = 130

__all__ = ["build_parser", "main"]


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ..process import retain_freed_memory
    retain_freed_memory()
    try:
        return args.handler(args)
    except ConvnetError as error:  # what convnet refused, with a message for a person; anything else is a bug
        if os.environ.get("CONVNET_TRACEBACK"):
            raise
        group = getattr(args, "group", None)
        if group is not None and group.size > 1:  # name the rank, and stop the others waiting for it
            print(f"convnet: rank {group.rank}: error: {error}", file=sys.stderr, flush=True)
            group.abort(EXIT_ERROR)
        print(f"convnet: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("convnet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (convnet summary ... | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
