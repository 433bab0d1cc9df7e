"""read_image on every kind of picture Pillow opens, each written here, against values worked out by hand."""

import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from convnet.data import ImageError, read_image
from convnet.data.images import _converted


def saved(image, path, **options):
    image.save(path, **options)
    return path


def gray(rgb):
    """Pillow's (and ITU-R 601's) luma of an RGB triple, rounded."""
    r, g, b = map(int, rgb)
    return round(r * 299 / 1000 + g * 587 / 1000 + b * 114 / 1000)


def blank_png(path, width, height):
    """A valid all-black 1-bit PNG, compressed a row at a time: tens of KB even at 20000x20000."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = bytes(1 + (width + 7) // 8)  # the filter byte, then the packed pixels
    compressor = zlib.compressobj()
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def is_one_line(error):
    """Whether ``error`` prints as its message alone, with no chained traceback under it."""
    return "\n" not in str(error) and (error.__context__ is None or error.__suppress_context__)


def test_plain_gray_and_rgb_keep_their_values_and_notes(tmp_path):
    values = np.array([[0, 100, 255]], np.uint8)
    path = saved(Image.fromarray(values), tmp_path / "gray.png")
    pixels, notes = read_image(path)
    assert pixels.tolist() == [values.tolist()] and pixels.dtype == np.uint8 and notes == []
    pixels, notes = read_image(path, channels=3)
    assert pixels.tolist() == [values.tolist()] * 3 and notes == ["converted L to RGB"]
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    path = saved(Image.fromarray(colours), tmp_path / "colour.png")
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[76, 150, 29, 18]]] == [[[gray(c) for c in colours[0]]]]
    assert notes == ["converted RGB to grayscale"]
    pixels, notes = read_image(path, channels=3)
    assert pixels[:, 0].T.tolist() == colours[0].tolist() and notes == []


@pytest.mark.parametrize("name, dtype, mode", [("png.png", np.uint16, "I;16"), ("tiff.tif", ">u2", "I;16B"),
                                               ("tiff32.tif", np.int32, "I")])
def test_16_bit_values_are_scaled_so_65535_is_white(tmp_path, name, dtype, mode):
    path = saved(Image.fromarray(np.array([[0, 257, 32768, 65535]]).astype(dtype)), tmp_path / name)
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[0, 1, 128, 255]]]
    assert notes == [f"converted {mode} to grayscale (16-bit, scaled to 8 bits)"]
    pixels, notes = read_image(path, channels=3)
    assert pixels[:, 0].tolist() == [[0, 1, 128, 255]] * 3
    assert notes == [f"converted {mode} to RGB (16-bit, scaled to 8 bits)"]


def test_32_bit_values_outside_16_bits_are_stretched_and_said_so(tmp_path):
    path = saved(Image.fromarray(np.array([[-100, 0, 100, 1000]], np.int32)), tmp_path / "signed.tif")
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[0, 23, 46, 255]]]  # (v + 100) * 255 / 1100
    assert notes == ["converted I to grayscale (values -100..1000 stretched to 0..255)"]


def test_float_values_in_0_1_are_scaled_others_stretched_nan_refused(tmp_path):
    path = saved(Image.fromarray(np.array([[0, 0.25, 0.5, 1]], np.float32)), tmp_path / "unit.tif")
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[0, 64, 128, 255]]]
    assert notes == ["converted F to grayscale (values 0..1 scaled to 0..255)"]
    path = saved(Image.fromarray(np.array([[-1, 0, 1, 3]], np.float32)), tmp_path / "wide.tif")
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[0, 64, 128, 255]]]  # (v + 1) * 255 / 4
    assert notes == ["converted F to grayscale (values -1..3 stretched to 0..255)"]
    path = saved(Image.fromarray(np.array([[0, np.nan]], np.float32)), tmp_path / "nan.tif")
    with pytest.raises(ImageError, match=r"nan.tif: expected finite pixel values, got NaN or infinity"):
        read_image(path)


def palette_image(indices, transparency=None):
    image = Image.fromarray(np.array([indices], np.uint8), "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    if transparency is not None:
        image.info["transparency"] = transparency
    return image


def test_palette_colours_become_their_gray_or_rgb(tmp_path):
    path = saved(palette_image([0, 1, 2, 3]), tmp_path / "palette.png")
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[gray((255, 0, 0)), gray((0, 255, 0)), gray((0, 0, 255)), gray((10, 20, 30))]]]
    assert pixels.tolist() == [[[76, 150, 29, 18]]] and notes == ["converted P to grayscale"]
    pixels, notes = read_image(path, channels=3)
    assert pixels[:, 0].T.tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]
    assert notes == ["converted P to RGB"]


@pytest.mark.parametrize("name", ["palette.png", "palette.gif"])
def test_transparent_palette_entries_are_black(tmp_path, name):
    pixels, notes = read_image(saved(palette_image([0, 1, 3], transparency=1), tmp_path / name))
    assert pixels.tolist() == [[[76, 0, 18]]]
    assert notes == ["converted P to grayscale", "alpha composited onto black"]


def test_alpha_is_composited_onto_black(tmp_path):
    rgba = np.array([[[200, 100, 50, 0], [200, 100, 50, 128], [200, 100, 50, 255]]], np.uint8)
    path = saved(Image.fromarray(rgba), tmp_path / "rgba.png")
    half = (100, 50, 25)  # round(200 * 128 / 255), round(100 * 128 / 255), round(50 * 128 / 255)
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[0, gray(half), gray((200, 100, 50))]]] == [[[0, 62, 124]]]
    assert notes == ["converted RGBA to grayscale", "alpha composited onto black"]
    pixels, notes = read_image(path, channels=3)
    assert pixels[:, 0].T.tolist() == [[0, 0, 0], list(half), [200, 100, 50]]
    assert notes == ["converted RGBA to RGB", "alpha composited onto black"]
    la = np.array([[[200, 0], [200, 128], [200, 255]]], np.uint8)
    pixels, notes = read_image(saved(Image.fromarray(la), tmp_path / "la.png"))
    assert pixels.tolist() == [[[0, 100, 200]]]
    assert notes == ["converted LA to grayscale", "alpha composited onto black"]


def test_opaque_alpha_changes_nothing_and_is_not_noted(tmp_path):
    rgba = np.array([[[200, 100, 50, 255], [0, 0, 255, 255]]], np.uint8)
    pixels, notes = read_image(saved(Image.fromarray(rgba), tmp_path / "opaque.png"), channels=3)
    assert pixels[:, 0].T.tolist() == [[200, 100, 50], [0, 0, 255]] and notes == ["converted RGBA to RGB"]


def test_a_transparent_colour_key_is_black(tmp_path):
    path = saved(Image.fromarray(np.array([[10, 20, 30]], np.uint8)), tmp_path / "key.png", transparency=20)
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[10, 0, 30]]] and notes == ["alpha composited onto black"]


def test_bilevel_is_0_or_255(tmp_path):
    path = saved(Image.fromarray(np.array([[False, True, True, False]])), tmp_path / "bits.png")
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[0, 255, 255, 0]]] and notes == ["converted 1 to grayscale"]


def test_cmyk_ycbcr_and_lab_go_through_rgb(tmp_path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 51], [0, 0, 0, 255]]], np.uint8)
    path = saved(Image.fromarray(cmyk, "CMYK"), tmp_path / "cmyk.tif")
    rgb = [[round((255 - int(ink)) * (255 - int(k)) / 255) for ink in (c, m, y)] for c, m, y, k in cmyk[0]]
    assert rgb == [[255, 255, 255], [0, 255, 255], [204, 204, 204], [0, 0, 0]]
    pixels, notes = read_image(path, channels=3)
    assert pixels[:, 0].T.tolist() == rgb and notes == ["converted CMYK to RGB"]
    pixels, notes = read_image(path)
    assert pixels.tolist() == [[[255, 179, 204, 0]]] == [[[gray(c) for c in rgb]]]
    assert notes == ["converted CMYK to grayscale"]
    # R = Y + 1.402 (Cr - 128), G = Y - 0.344 (Cb - 128) - 0.714 (Cr - 128), B = Y + 1.772 (Cb - 128)
    ycbcr = np.array([[[128, 128, 128], [76, 85, 255]]], np.uint8)
    pixels, notes = read_image(saved(Image.fromarray(ycbcr, "YCbCr"), tmp_path / "ycbcr.tif"), channels=3)
    assert pixels[:, 0].T.tolist() == [[128, 128, 128], [254, 0, 0]] and notes == ["converted YCbCr to RGB"]
    # L* = 128 / 255 * 100, a* = b* = 0: Y = ((L* + 16) / 116)^3 = 0.186; sRGB 1.055 Y^(1 / 2.4) - 0.055 = 0.468
    lab = np.array([[[128, 0, 0]]], np.uint8)
    pixels, notes = read_image(saved(Image.fromarray(lab, "LAB"), tmp_path / "lab.tif"))
    assert pixels.tolist() == [[[119]]] and notes == ["converted LAB to grayscale"]


@pytest.mark.parametrize("mode, pixel, rgb", [
    ("HSV", [0, 255, 255], [255, 0, 0]),
    ("RGBa", [100, 50, 25, 128], [100, 50, 25]),  # premultiplied: already composited onto black
    ("La", [100, 128], [100, 100, 100]),
])
def test_modes_no_file_format_stores_convert_too(mode, pixel, rgb):
    notes = []
    image = _converted("x", Image.fromarray(np.array([[pixel]], np.uint8), mode), 3, notes)
    assert np.asarray(image).tolist() == [[rgb]] and notes[0] == f"converted {mode} to RGB"


@pytest.mark.parametrize("name, options", [("animated.gif", {}), ("animated.png", {}),
                                           ("animated.webp", {"lossless": True})])
def test_the_first_frame_is_read_and_said_so(tmp_path, name, options):
    frames = [Image.fromarray(np.full((4, 5), value, np.uint8)) for value in (50, 150, 250)]
    path = saved(frames[0], tmp_path / name, save_all=True, append_images=frames[1:], **options)
    pixels, notes = read_image(path)
    assert pixels.shape == (1, 4, 5) and (pixels == 50).all()
    assert notes[0] == "used the first of 3 frames"


def test_resizing_is_noted(tmp_path):
    path = saved(Image.fromarray(np.full((30, 40), 200, np.uint8)), tmp_path / "wide.png")
    pixels, notes = read_image(path, size=(28, 28))
    assert pixels.shape == (1, 28, 28) and (pixels == 200).all() and notes == ["resized 40x30 to 28x28"]
    pixels, notes = read_image(path, size=(30, 40))
    assert pixels.shape == (1, 30, 40) and notes == []


def test_the_exif_orientation_is_applied(tmp_path):
    values = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned, show it rotated 90 degrees clockwise
    pixels, notes = read_image(saved(Image.fromarray(values), tmp_path / "turned.png", exif=exif))
    np.testing.assert_array_equal(pixels[0], np.rot90(values, -1))
    assert notes == ["turned upright as its EXIF orientation says"]


def test_a_damaged_exif_tag_that_pillow_skips_is_a_note_not_a_stray_warning(tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 40  # ImageDescription: long enough to be stored out of line, at an offset
    raw = bytearray(exif.tobytes())  # big-endian TIFF: tag 0x010E, type 2 (ASCII), then the count
    entry = raw.index(b"\x01\x0e\x00\x02")
    raw[entry + 4:entry + 8] = (4000).to_bytes(4, "big")  # a count past the end of the EXIF block
    values = np.full((2, 3), 77, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels, notes = read_image(saved(Image.fromarray(values), tmp_path / "damaged.png", exif=bytes(raw)))
    assert pixels.tolist() == [values.tolist()]
    assert notes == ["Pillow warned: Tag data larger than file. Skipping tag 270"]


def test_the_bomb_helper_writes_a_real_png(tmp_path):
    pixels, notes = read_image(blank_png(tmp_path / "small.png", 10, 3))
    assert pixels.shape == (1, 3, 10) and not pixels.any() and notes == ["converted 1 to grayscale"]


@pytest.mark.parametrize("width, height, size", [
    (20000, 20000, "400 megapixels"),  # past twice Pillow's limit: Pillow itself refuses it at open
    (10000, 10000, "10000x10000 pixels"),  # past Pillow's limit, where it only warns
    (9000, 9000, "9000x9000 pixels"),  # past ours only
])
def test_huge_images_are_refused_before_decoding(tmp_path, width, height, size):
    path = blank_png(tmp_path / "bomb.png", width, height)
    assert path.stat().st_size < 100_000
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError) as raised:
            read_image(path)
    assert time.perf_counter() - start < 1  # decoding 20000x20000 would take seconds and 400 MB
    assert str(raised.value) == f"{path}: {size} is more than convnet reads (at most 8192x8192 = 67 megapixels)"
    assert is_one_line(raised.value)


def test_a_lower_limit_set_in_pillow_still_applies_and_is_reported_as_pillows(tmp_path, monkeypatch):
    path = saved(Image.fromarray(np.zeros((10, 10), np.uint8)), tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(ImageError, match=r"small.png: not a readable image \(DecompressionBombError: Image size "
                                         r"\(100 pixels\) exceeds limit of 80 pixels"):
        read_image(path)


def test_the_largest_image_read_is_8192x8192(tmp_path):
    pixels, _ = read_image(blank_png(tmp_path / "large.png", 8192, 8192), size=(28, 28))
    assert pixels.shape == (1, 28, 28) and not pixels.any()


def noise_png(path):
    """A PNG too random to compress, so Pillow writes its data in two IDAT chunks."""
    return saved(Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)), path)


def damaged(path, offset, replacement):
    data = bytearray(path.read_bytes())
    data[offset:offset + len(replacement)] = replacement
    path.write_bytes(bytes(data))
    return path


def test_damaged_files_are_one_line_errors_naming_the_file(tmp_path):
    cut = noise_png(tmp_path / "truncated.png")
    cut.write_bytes(cut.read_bytes()[:30_000])
    broken_chunk = noise_png(tmp_path / "chunk.png")
    second_idat = broken_chunk.read_bytes().index(b"IDAT", 100)
    damaged(broken_chunk, second_idat, b"\x00\x01\x02\x03")
    broken_data = damaged(noise_png(tmp_path / "data.png"), 200, b"\xff" * 8)
    bad_header = tmp_path / "header.pgm"
    bad_header.write_bytes(b"P5\n2 2\n25x\n" + bytes(4))
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    for path, reason in [(cut, "OSError: image file is truncated"),
                         (broken_chunk, "SyntaxError: broken PNG file"),
                         (broken_data, "OSError: broken data stream"),
                         (bad_header, "ValueError: invalid literal for int()"),
                         (not_an_image, "UnidentifiedImageError: cannot identify image file")]:
        with pytest.raises(ImageError) as raised:
            read_image(path)
        assert str(raised.value).startswith(f"{path}: not a readable image ({reason}")
        assert is_one_line(raised.value)
    with pytest.raises(ImageError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")


def test_channels_must_be_1_or_3(tmp_path):
    with pytest.raises(ValueError, match="read_image: expected channels 1 or 3, got 4"):
        read_image(tmp_path / "any.png", channels=4)


def test_crop_keeps_the_aspect_ratio_by_cutting_the_centred_region(tmp_path):
    values = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4) * 10  # 4 wide, 6 high
    pixels, notes = read_image(saved(Image.fromarray(values), tmp_path / "tall.png"), size=(4, 4), crop=True)
    np.testing.assert_array_equal(pixels[0], values[1:5])  # the middle 4 rows, nothing squashed
    assert notes == ["cropped 4x6 to the centred 4x4"]
    wide = values.T.copy()  # 6 wide, 4 high
    pixels, notes = read_image(saved(Image.fromarray(wide), tmp_path / "wide.png"), size=(4, 4), crop=True)
    np.testing.assert_array_equal(pixels[0], wide[:, 1:5])
    assert notes == ["cropped 6x4 to the centred 4x4"]
    pixels, notes = read_image(tmp_path / "wide.png", size=(2, 3), crop=True)  # its own aspect: only resized
    assert pixels.shape == (1, 2, 3) and notes == ["resized 6x4 to 3x2"]
