"""The lesson in Korean: one table per language with the same entries and the same numbers
filled in, every picture drawn without a missing glyph, and a clear error where no font has Hangul."""

import os
import string
import warnings

import numpy as np
import pytest
from matplotlib import font_manager

import convnet
from convnet import models, viz
from convnet.cli import main
from convnet.data.mnist import CLASSES
from convnet.language import LANGUAGES, FontMissing, class_names, words
from convnet.viz import figures


def hangul_font_installed():
    try:
        return figures.font_families("ko") is not None
    except FontMissing:
        return False


needs_hangul = pytest.mark.skipif(not hangul_font_installed() and not os.environ.get("CI"),
                                  reason="needs a font with Hangul: apt-get install fonts-nanum (make test installs it)")


def fields(template):
    return sorted(field for _, field, _, _ in string.Formatter().parse(template) if field is not None)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_table_has_every_entry_with_the_same_numbers_to_fill_in(language):
    english, table = words("en"), words(language)
    assert set(table) == set(english)
    assert {key: fields(text) for key, text in table.items()} == {key: fields(text) for key, text in english.items()}


def test_an_unknown_language_is_refused_and_class_names_are_translated_where_known():
    with pytest.raises(ValueError, match="^language must be one of en, ko, got 'fr'$"):
        words("fr")
    assert class_names(("Coat", "Bag", "7"), "ko") == ("코트", "가방", "7")
    assert class_names(("Coat",), "en") == ("Coat",)


def draw_everything(tmp_path, language):
    convnet.manual_seed(0)
    model = models.reference_cnn()
    image = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    return viz.show(model, image, tmp_path, "test", classes=CLASSES["fashion-mnist"], language=language)


@needs_hangul
def test_korean_pictures_have_every_glyph(tmp_path):
    """matplotlib warns for each glyph its font lacks (and draws an empty box): here, none."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = draw_everything(tmp_path, "ko")
    page = (tmp_path / "index.html").read_text()
    assert '<html lang="ko">' in page and "<h2>(a) 합성곱: 커널이 이미지 위를 미끄러집니다</h2>" in page
    assert "<h2>모델</h2>" in page and len(written) == 10


def test_without_the_font_the_same_pictures_would_miss_glyphs(tmp_path, monkeypatch):
    """The check above can fail: matplotlib's own font has no Hangul."""
    monkeypatch.setattr(figures, "font_families", lambda language: None)
    with pytest.warns(UserWarning, match="missing from font"):
        draw_everything(tmp_path, "ko")


@needs_hangul
def test_the_korean_figures_say_the_lessons_words():
    story = viz.tell(models.lesson_network(kernels=4), np.random.default_rng(0).random((1, 32, 32), np.float32))
    with figures.language_font("ko"):
        convolution = viz.convolution_figure(story, "ko")
        pooling = viz.pooling_figure(story, "ko")
    assert convolution.get_suptitle().startswith("합성곱: ") and pooling.get_suptitle().startswith("맥스 풀링: ")
    assert "특징 맵" in convolution.axes[2].get_title()


def test_no_font_with_hangul_is_one_clear_line_and_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [entry for entry in font_manager.fontManager.ttflist
                                                              if entry.name == "DejaVu Sans"])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *args, **kwargs: [])
    code = main(["show", "--lesson", "--lang", "ko", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err == ("convnet: error: --lang ko needs a font with Hangul and none is installed: apt-get "
                                 "install fonts-nanum (Debian, Ubuntu), or install any Korean font such as Noto Sans "
                                 "CJK KR\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@needs_hangul
def test_the_lesson_in_korean_from_the_command_line(tmp_path, capsys):
    assert main(["show", "--lesson", "--lang", "ko", "--out", str(tmp_path / "lesson")]) == 0
    page = (tmp_path / "lesson" / "index.html").read_text()
    assert "<h1>수업: 256x256 이미지 위의 10x10 커널 100개, 그리고 2x2 맥스 풀링 (학습 전 커널)</h1>" in page
    assert "(c) 맥스 풀링" in page and (tmp_path / "lesson" / "sliding.gif").stat().st_size > 0


@needs_hangul
def test_a_confusion_matrix_of_classes_named_in_hangul_has_every_glyph():
    from convnet.viz.training import confusion_figure
    figure = confusion_figure([[3, 1], [0, 4]], ["green 초록", "blue"])
    assert "green 초록" in [label.get_text() for label in figure.axes[0].get_yticklabels()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # matplotlib warns for each glyph its font lacks
        png = figures.png_bytes(figure)
    assert png.startswith(b"\x89PNG") and [str(w.message) for w in caught if "missing from" in str(w.message)] == []
