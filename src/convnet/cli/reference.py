"""docs/cli.md, every command and option of ``convnet``, written from the parser itself so that the
page cannot drift from it (``tests/test_cli_docs.py`` compares them). Regenerate it with::

    python -m convnet.cli.reference > docs/cli.md
"""

import argparse

from .parser import build_parser

REGENERATE = "python -m convnet.cli.reference > docs/cli.md"


def markdown(parser=None):
    """The page, as Markdown text: each command, what it does, then its arguments and options."""
    parser = parser or build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    lines = ["# The convnet command line", "",
             f"Every command and option of `convnet`, as `convnet COMMAND --help` shows them. This page is written "
             f"from the parser: after changing an option, regenerate it with `{REGENERATE}`.", "",
             "Options and file arguments may come in any order. An error prints one line, `convnet: error: ...`, and "
             "exits 1 (set `CONVNET_TRACEBACK=1` for the traceback); a wrong option prints the command's usage and "
             "exits 2. `convnet --version` prints the version.", "",
             "## Commands", ""]
    lines += [f"- `convnet {name}`: {command.description}" for name, command in commands.choices.items()]
    for name, command in commands.choices.items():
        lines += ["", f"## convnet {name}", "", command.description]
        actions = [action for action in command._actions
                   if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)]
        for title, chosen in (("Arguments", [action for action in actions if not action.option_strings]),
                              ("Options", [action for action in actions if action.option_strings])):
            if chosen:
                lines += ["", f"{title}:", ""]
                lines += [f"- `{_invocation(action)}`{_explained(action)}" for action in chosen]
    return "\n".join(lines) + "\n"


def _invocation(action):
    """How the option or argument is written: ``--model {lenet5,...}``, ``--test-mirror, --no-test-mirror``."""
    value = action.metavar or ("{" + ",".join(map(str, action.choices)) + "}" if action.choices else None)
    if not action.option_strings:
        return value or action.dest
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    value = value or action.dest.upper()
    value = {"?": f"[{value}]", "+": f"{value} [{value} ...]", "*": f"[{value} ...]"}.get(action.nargs, value)
    return f"{', '.join(action.option_strings)} {value}"


def _explained(action):
    """``: help (default X)``, the default said where the help does not say it."""
    text = action.help or ""
    default = action.default
    if default not in (None, False, "", argparse.SUPPRESS) and "default" not in text.lower():
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        text = f"{text} (default {shown})".strip()
    return f": {text}" if text else ""


if __name__ == "__main__":
    print(markdown(), end="")
