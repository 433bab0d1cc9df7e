"""Users' own images: reading any picture file, of any mode, into uint8 pixels (folders of them are
`convnet.data.own_images`')."""

import math
import re
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps

from ..errors import ConvnetError, InvalidValue

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# A 48-megapixel phone photograph fits; a decompression bomb (a few KB on disk that decode to gigabytes) does not.
MAX_PIXELS = 8192 * 8192

_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_GRAY_MODES = ("1", "L", "LA", "La")


class ImageError(ConvnetError, ValueError):
    """An image that cannot be read; the message names the file."""


def read_image(path, size=None, channels=1, crop=False):
    """Read ``path`` as uint8 (channels, H, W), converted to grayscale (1) or RGB (3) and,
    if ``size`` (H, W) is given, resized; with ``crop``, first cut to the centred region of
    ``size``'s aspect ratio, so that nothing is squashed. Returns (array, notes) where notes lists
    the conversions made, so callers can tell the user.

    How each kind of image becomes 8 bits:

    - 16-bit ("I;16", "I;16B", ...): value * 255 / 65535, rounded, so 65535 is white.
    - 32-bit integer ("I", which is also what Pillow makes of some 16-bit files): values within
      0..65535 are read as 16-bit; any other range is stretched from its minimum to its maximum
      (the full int32 range would leave a typical image one flat gray).
    - Floating point ("F"): values within 0..1 are scaled by 255; any other range is stretched
      from its minimum to its maximum (a constant image is black); NaN or infinity is an
      `ImageError`. Every scaling is noted.
    - Transparency (alpha, or a transparent palette entry or colour) is composited onto black, as
      the Fashion-MNIST-style models here see light objects on a dark background.
    - Palette, bilevel ("1"), CMYK, YCbCr, LAB and HSV images go through RGB (or grayscale);
      RGB becomes grayscale by Pillow's L = R * 299/1000 + G * 587/1000 + B * 114/1000.
    - Several frames (GIF, APNG, WebP, multi-page TIFF): the first, noted.
    - An EXIF orientation other than upright is applied, noted.
    - What Pillow warns about while reading (a damaged EXIF or TIFF tag it skipped) is noted too.

    A file of more than `MAX_PIXELS` pixels is refused before its pixels are decoded; it, and
    any file Pillow cannot decode (damaged, truncated, not an image), is an `ImageError`.
    """
    if channels not in (1, 3):
        raise InvalidValue(f"read_image: expected channels 1 or 3, got {channels}")
    with warnings.catch_warnings(record=True) as pillow_warnings:
        warnings.simplefilter("always")
        # Pillow warns at open about images past its own limit; ours is lower, and says more, below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        array, notes = _decoded(path, size, channels, crop)
    # Pillow's warnings (damaged EXIF or TIFF tags it skipped, ...) become notes, said with the rest,
    # rather than a Python warning with a source line on stderr.
    notes += [f"Pillow warned: {message}" for message in dict.fromkeys(str(w.message) for w in pillow_warnings)]
    return array, notes


def _decoded(path, size, channels, crop):
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(_too_large(path, f"{width}x{height} pixels"))
            notes = []
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                notes.append(f"used the first of {frames} frames")
            image.load()
            if image.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9):  # 2..8: turned or mirrored
                image = ImageOps.exif_transpose(image)
                notes.append("turned upright as its EXIF orientation says")
            image = _converted(path, image, channels, notes)
            if crop and size is not None:
                image = _cropped_to_aspect(image, size, notes)
            if size is not None and image.size != (size[1], size[0]):
                notes.append(f"resized {image.size[0]}x{image.size[1]} to {size[1]}x{size[0]}")
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Past twice its own limit Pillow refuses inside Image.open, before the size can be asked; its
        # message carries the pixel count.
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        if pixels is None or int(pixels[1]) <= MAX_PIXELS:
            raise ImageError(_unreadable(path, error)) from None
        raise ImageError(_too_large(path, f"{int(pixels[1]) // 10**6} megapixels")) from None
    except Exception as error:  # noqa: BLE001  (damaged files make Pillow raise OSError, SyntaxError, ValueError, ...)
        raise ImageError(_unreadable(path, error)) from None
    return (array[None] if channels == 1 else array.transpose(2, 0, 1)), notes


def _cropped_to_aspect(image, size, notes):
    """The centred part of ``image`` with the aspect ratio of ``size`` (H, W), the largest there is."""
    width, height = image.size
    keep_width = min(width, round(height * size[1] / size[0]))
    keep_height = min(height, round(width * size[0] / size[1]))
    if (keep_width, keep_height) == (width, height):
        return image
    left, top = (width - keep_width) // 2, (height - keep_height) // 2
    notes.append(f"cropped {width}x{height} to the centred {keep_width}x{keep_height}")
    return image.crop((left, top, left + keep_width, top + keep_height))


def _too_large(path, size):
    side = math.isqrt(MAX_PIXELS)
    return f"{path}: {size} is more than convnet reads (at most {side}x{side} = {MAX_PIXELS // 10**6} megapixels)"


def _unreadable(path, error):
    return f"{path}: not a readable image ({error.__class__.__name__}: {error})"


def _converted(path, image, channels, notes):
    """``image`` as 8-bit "L" (``channels`` 1) or "RGB" (3), with a note of what that took."""
    mode, target = image.mode, "L" if channels == 1 else "RGB"
    how, see_through = "", False
    if mode in ("I", "F") or mode.startswith("I;16"):
        values, how = _eight_bits(path, mode, np.asarray(image))
        image = Image.fromarray(values)
    elif mode in _ALPHA_MODES or "transparency" in image.info:
        image, see_through = _composited_onto_black(image.convert("LA" if mode in _GRAY_MODES else "RGBA"))
    elif mode not in ("L", "RGB"):
        image = image.convert("L" if mode in _GRAY_MODES else "RGB")
    if mode != target:
        notes.append(f"converted {mode} to {'grayscale' if channels == 1 else 'RGB'}" + (f" ({how})" if how else ""))
    if see_through:
        notes.append("alpha composited onto black")
    return image if image.mode == target else image.convert(target)


def _eight_bits(path, mode, values):
    """(uint8 array, how it was scaled) of the pixel values of a 16-bit, 32-bit or float image."""
    if mode == "F" and not np.isfinite(values).all():
        raise ImageError(f"{path}: expected finite pixel values, got NaN or infinity")
    low, high = values.min(), values.max()
    if mode == "F" and 0 <= low and high <= 1:
        return _per_band(values, lambda band: np.rint(band * np.float32(255))), "values 0..1 scaled to 0..255"
    if mode != "F" and 0 <= low and high <= 65535:
        # round(value * 255 / 65535), in integers
        return _per_band(values, lambda band: (band.astype(np.uint32) * 255 + 32767) // 65535), \
            "16-bit, scaled to 8 bits"
    spread = float(high) - float(low)
    if not spread:
        return np.zeros(values.shape, np.uint8), f"values {low:g}..{high:g} stretched to 0..255"
    return (_per_band(values, lambda band: np.rint((band.astype(np.float64) - float(low)) * (255 / spread))),
            f"values {low:g}..{high:g} stretched to 0..255")


def _per_band(values, convert):
    """``convert`` (to values in 0..255) applied to ``values`` a band of rows at a time, as uint8."""
    out = np.empty(values.shape, np.uint8)
    for rows in _bands(len(values), values[:1].size):
        out[rows] = convert(values[rows])
    return out


def _bands(height, row_size):
    """Slices of ``height`` rows of ``row_size`` values each, about a million values a slice. The
    conversions work a band at a time: whole-image temporaries cost several times the image, and a
    340-byte GIF can describe 50 megapixels (composited at once, that took 1.4 GB; a band, a few MB)."""
    rows = max(1, (1 << 20) // max(1, row_size))
    return [slice(start, min(start + rows, height)) for start in range(0, height, rows)]


def _composited_onto_black(image):
    """(an "LA" or "RGBA" image laid over black, as "L" or "RGB"; whether any of it was see-through)."""
    width, height = image.size
    composited = np.empty((height, width) if image.mode == "LA" else (height, width, 3), np.uint8)
    see_through = False
    for rows in _bands(height, width * 4):
        # Read a band at a time, too: np.asarray of the whole image would copy all of it.
        pixels = np.asarray(image.crop((0, rows.start, width, rows.stop)))
        colour, alpha = pixels[..., :-1].astype(np.uint16), pixels[..., -1:]
        # round(colour * alpha / 255), in integers
        composited[rows] = ((colour * alpha + 127) // 255).reshape(composited[rows].shape)
        see_through = see_through or bool((alpha < 255).any())
    return Image.fromarray(composited), see_through
