"""docs/cli.md is the parser's own account of every command and option, so it cannot drift from
``convnet COMMAND --help``."""

import argparse
import re
from pathlib import Path

from convnet.cli import build_parser
from convnet.cli.reference import REGENERATE, markdown

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_docs_cli_md_is_written_from_the_parser():
    assert PAGE.read_text() == markdown(), f"docs/cli.md differs from the parser: regenerate it with `{REGENERATE}`"


def _commands(parser):
    return next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices


def test_each_commands_section_names_exactly_its_options():
    """Read back from the page: every command has a section, and the options a section names are
    the command's (help and suppressed ones aside), so the writer cannot drop or invent one."""
    sections = dict(re.findall(r"^## convnet (\w+)\n(.*?)(?=^## |\Z)", PAGE.read_text(), re.M | re.S))
    commands = _commands(build_parser())
    assert list(sections) == list(commands)
    for name, command in commands.items():
        expected = {option for action in command._actions if action.help != argparse.SUPPRESS
                    for option in action.option_strings} - {"-h", "--help"}
        listed = set(re.findall(r"^- `(--[\w-]+)(?:, (--[\w-]+))?", sections[name], re.M))
        assert {option for pair in listed for option in pair if option} == expected, name
