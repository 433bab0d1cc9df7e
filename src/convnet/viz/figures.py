"""Matplotlib set-up shared by every picture: the Agg backend (no screen needed), one style."""

import functools
import io
import logging
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib import font_manager, ft2font  # noqa: E402

from ..files import atomic_write  # noqa: E402
from ..language import FontMissing  # noqa: E402

# Fonts with Hangul, in order of preference: Debian's fonts-nanum, then Noto CJK, Un and Baekmuk.
HANGUL_FONTS = ("NanumGothic", "NanumBarunGothic", "Noto Sans CJK KR", "Noto Sans KR", "UnDotum", "Baekmuk Gulim")
FALLBACK_FONT = "DejaVu Sans"  # matplotlib's own: draws what the language's font lacks (the minus sign, say)


def new_figure(rows=1, columns=1, size=(6, 4), **kwargs):
    return plt.subplots(rows, columns, figsize=size, layout="constrained", **kwargs)


def png_bytes(figure, dpi=110):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return buffer.getvalue()


def save(figure, path, dpi=110):
    """Write ``figure`` as a PNG atomically and close it."""
    atomic_write(path, png_bytes(figure, dpi))


def font_families(language):
    """The fonts to draw ``language`` in: None for matplotlib's default (English); for Korean an
    installed font with Hangul, which matplotlib's default lacks (it would draw empty boxes), or
    `FontMissing` saying what to install."""
    if language != "ko":
        return None
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    found = [name for name in HANGUL_FONTS if name in installed]
    if not found:  # matplotlib's font cache may predate the font: look at every font on disk
        paths = [path for path in font_manager.findSystemFonts() if _has_hangul(path)]
        for path in paths:
            font_manager.fontManager.addfont(path)
        names = {font_manager.FontProperties(fname=path).get_name() for path in paths}
        found = [name for name in HANGUL_FONTS if name in names] + sorted(names - set(HANGUL_FONTS))
    if not found:
        raise FontMissing("--lang ko needs a font with Hangul and none is installed: apt-get install fonts-nanum "
                          "(Debian, Ubuntu), or install any Korean font such as Noto Sans CJK KR")
    return [found[0], FALLBACK_FONT]


def _has_hangul(path):
    return ord("합") in _letters(path)


@functools.cache
def _letters(path):
    """The code points the font at ``path`` draws; none for a font FreeType cannot read or scale
    (a colour emoji font's fixed-size bitmaps make matplotlib fail at any other size)."""
    try:
        font = ft2font.FT2Font(path)
        return frozenset(font.get_charmap()) if font.scalable else frozenset()
    except (OSError, RuntimeError, ValueError):  # not a font FreeType can read
        return frozenset()


def fonts_for(text, language="en"):
    """The font families to draw ``text`` in, ``language``'s (`font_families`) first, then installed
    fonts that have the letters those lack (class names in another script: Hangul in an English
    picture); None when ``language``'s fonts have them all, so such pictures stay as they were.
    Letters that no installed font has (most emoji) matplotlib draws as empty boxes, with a
    warning: never an error."""
    families = font_families(language) or [FALLBACK_FONT]
    missing = {ord(letter) for letter in text if not letter.isspace()}
    for family in families:
        path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        missing -= _letters(path)
    if not missing:
        return None
    added = []
    candidates = sorted(font_manager.fontManager.ttflist,
                        key=lambda entry: (entry.name not in HANGUL_FONTS, entry.name))  # the same choice every run
    for entry in candidates:
        covered = missing & _letters(entry.fname)
        if covered and entry.name not in families + added:
            added.append(entry.name)
            missing -= covered
    return families + added if added else None


@contextmanager
def language_font(language):
    """Draw the figures made inside in fonts that have ``language``'s letters (`font_families`)."""
    families = font_families(language)
    if families is None:
        yield
        return
    # Fonts with Hangul often come in weights 400 and 600 only, and matplotlib logs each use of
    # 600 for bold text as a warning: the chosen font is checked above, the weight is fine.
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with plt.rc_context({"font.family": families}):
            yield
    finally:
        logger.setLevel(level)
