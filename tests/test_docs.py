"""The README and the pages under docs/ hold together: every relative link and image points at a
file or folder of the repository that exists, every ``#anchor`` at a heading of the page it names
(with GitHub's rules for heading ids), every table has the cells its header promises, and every
```python block runs as written, each on its own (a fresh namespace, a temporary working folder).

Blocks fenced ```py are shown but not run: that is the marker for examples too long for a test
(training for minutes). A ```python block that imports an optional extra of pyproject.toml (onnx,
onnxruntime, torch, scipy, ...) skips, naming the missing package, where it is not installed; a
missing core dependency still fails.
"""

import pathlib
import re
import tomllib
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"  # [text](target "title")
                  r"|^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)"                                     # [ref]: target
                  r"|<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"")                           # <img src="...">
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")


def split_fences(text):
    """``text`` as (prose lines, code blocks): prose is [(line number, line)] outside fences, a
    block is (language, line number of its first line, its text)."""
    prose, blocks, fence = [], [], None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence, language, start, body = match.group(1), match.group(2), number + 1, []
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            blocks.append((language, start, "\n".join(body) + "\n"))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append((number, line))
    return prose, blocks


def slug(heading):
    """GitHub's id for a heading's text: markup dropped, lower case, punctuation removed (letters,
    digits, ``_``, ``-`` and spaces stay, in any script), spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts as its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path):
    """The ids of ``path``'s headings; a repeated id gets -1, -2, ... as on GitHub."""
    seen, ids = {}, set()
    for _, line in split_fences(path.read_text(encoding="utf-8"))[0]:
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def link_problems(page, root=ROOT):
    """Every relative link or image of ``page`` that does not resolve, as 'page:line: why'."""
    problems = []
    for number, line in split_fences(page.read_text(encoding="utf-8"))[0]:
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = next(group for group in match.groups() if group)
            parts = urllib.parse.urlsplit(target)
            if parts.scheme or parts.netloc:
                continue  # a web address: not checked here
            where = f"{page.relative_to(root)}:{number}: {target}"
            path = (page.parent / urllib.parse.unquote(parts.path)).resolve() if parts.path else page
            if not path.is_relative_to(root):
                problems.append(f"{where}: points outside the repository")
            elif not path.exists():
                problems.append(f"{where}: {path.relative_to(root)} does not exist")
            elif parts.fragment:
                fragment = urllib.parse.unquote(parts.fragment)
                if path.suffix != ".md":
                    problems.append(f"{where}: an anchor into {path.relative_to(root)}, which has no headings")
                elif fragment not in anchors(path):
                    problems.append(f"{where}: no heading of {path.relative_to(root)} has the id {fragment!r}")
    return problems


def test_every_relative_link_and_image_resolves():
    problems = [problem for page in PAGES for problem in link_problems(page)]
    assert not problems, "\n".join(problems)


def table_problems(page, root=ROOT):
    """Tables of ``page`` that GitHub would not draw as written: no delimiter row (``|---|``) under
    the header, or a row whose cell count differs from the header's (its cells dropped or padded)."""
    problems, rows = [], []
    for number, line in split_fences(page.read_text(encoding="utf-8"))[0] + [(0, "")]:
        if line.lstrip().startswith("|"):
            rows.append((number, re.split(r"(?<!\\)\|", line.strip().strip("|"))))
            continue
        if rows:
            (start, header), where = rows[0], page.relative_to(root)
            if len(rows) < 2 or not all(re.fullmatch(r"\s*:?-+:?\s*", cell) for cell in rows[1][1]):
                problems.append(f"{where}:{start}: a table without a delimiter row under its header")
            problems += [f"{where}:{number}: {len(cells)} cells under a header of {len(header)}"
                         for number, cells in rows[1:] if len(cells) != len(header)]
        rows = []
    return problems


def test_every_table_row_has_as_many_cells_as_its_header():
    problems = [problem for page in PAGES for problem in table_problems(page)]
    assert not problems, "\n".join(problems)


def test_every_docs_page_is_reachable_from_the_readme():
    linked = {match.group(1) for match in re.finditer(r"\]\((docs/[^)#\s]+\.md)", (ROOT / "README.md").read_text())}
    pages = {f"docs/{page.name}" for page in PAGES[1:]}
    assert pages <= linked, f"pages the README does not link to: {sorted(pages - linked)}"


def test_the_checkers_find_what_github_would_not_draw(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Model card: `reference_cnn`\n\n## The hour's target: 0.950\n\n"
                                            "## 한국어\n\n## Notes\n\n## Notes\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md#model-card-reference_cnn) [ok](docs/a.md#the-hours-target-0950)\n"
                    "[ok](docs/a.md#한국어) [ok](docs/a.md#notes-1) [ok](#top) [web](https://example.com/x)\n"
                    "![missing](docs/b.png) [bad anchor](docs/a.md#nope) `[in code](nowhere.md)`\n"
                    "[outside](../elsewhere.md)\n\n# Top\n\n```sh\n[in a block](nowhere.md)\n```\n"
                    "| a | b |\n|---|---|\n| `x\\|y` | z |\n| 1 | 2 | 3 |\n\n| no | delimiter |\n")
    assert table_problems(page, tmp_path) == ["README.md:14: 3 cells under a header of 2",
                                              "README.md:16: a table without a delimiter row under its header"]
    problems = link_problems(page, tmp_path)
    assert problems == ["README.md:3: docs/b.png: docs/b.png does not exist",
                        "README.md:3: docs/a.md#nope: no heading of docs/a.md has the id 'nope'",
                        "README.md:4: ../elsewhere.md: points outside the repository"], problems


# ---------------------------------------------------------------------------- the code blocks
def _optional_modules():
    """Import names of every package that an extra of pyproject.toml adds (``tensorboardX`` ->
    ``tensorboardx``: compared in lower case)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [item for extra in project["optional-dependencies"].values() for item in extra]
    return {re.match(r"[\w.-]+", item).group(0).lower().replace("-", "_") for item in requirements}


OPTIONAL = _optional_modules()
BLOCKS = [pytest.param(page, start, text, id=f"{page.relative_to(ROOT)}:{start}")
          for page in PAGES for language, start, text in split_fences(page.read_text(encoding="utf-8"))[1]
          if language == "python"]


def missing_optional_package(error):
    """The optional package whose absence ``error`` reports, or None for anything else."""
    name = (error.name or "").partition(".")[0]
    return name if name.lower() in OPTIONAL else None


@pytest.mark.parametrize("page, start, text", BLOCKS)
def test_python_blocks_run(page, start, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands here
    code = compile("\n" * (start - 1) + text, str(page), "exec")  # tracebacks name the page's lines
    namespace = {"__name__": "__main__"}
    try:
        exec(code, namespace)  # a block checks its own claims with assert; raising fails this test
    except ModuleNotFoundError as error:
        package = missing_optional_package(error)
        if package is None:
            raise
        pytest.skip(f"{package} is not installed (pip install -e '.[test]')")
    assert set(namespace) - {"__name__", "__builtins__"}, "the block defined nothing: is it code to run?"


def test_the_blocks_too_long_to_run_are_python_that_compiles():
    compiled = [compile("\n" * (start - 1) + text, str(page), "exec")  # a SyntaxError names the page's line
                for page in PAGES for language, start, text in split_fences(page.read_text(encoding="utf-8"))[1]
                if language == "py"]
    assert compiled, "no ```py blocks found: the fence reader or the docs changed"


def test_the_pages_have_blocks_to_run_and_optional_imports_are_told_apart():
    assert sum(1 for block in BLOCKS if block.values[0].name == "README.md") >= 1
    assert {"onnx", "onnxruntime", "torch", "scipy", "mpi4py", "tensorboardx"} <= OPTIONAL
    assert missing_optional_package(ModuleNotFoundError("No module named 'onnx'", name="onnx")) == "onnx"
    assert missing_optional_package(ModuleNotFoundError("...", name="tensorboardX.proto")) == "tensorboardX"
    assert missing_optional_package(ModuleNotFoundError("No module named 'numpy'", name="numpy")) is None
    prose, blocks = split_fences("a\n```python\nx = 1\n```\n```py\nlong()\n```\nb\n")
    assert [line for _, line in prose] == ["a", "b"]
    assert blocks == [("python", 3, "x = 1\n"), ("py", 6, "long()\n")]
