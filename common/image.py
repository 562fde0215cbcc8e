"""Reading photos with OpenCV into plain uint8 numpy arrays, with clear errors for bad input.

    read_image(path, mode="rgb")  -> [H, W, 3] uint8, RGB channel order
    read_image(path, mode="gray") -> [H, W]    uint8
    sample_photo_path()           -> a photo that ships with matplotlib, so chapters run offline
    declared_size(path)           -> (width, height) from the file's header, without decoding it

An image larger than MAX_MEGAPIXELS is refused (ImageTooLarge) from its header, before any pixel is decoded: a
small file can declare 30000 x 30000 pixels, and decoding it would take gigabytes.

OpenCV is quiet about failures: `cv2.imread` returns None for a missing file *and* for a file it cannot
decode. Here each case becomes a `DataError` that names the path and says what to do. Whatever the file
holds (greyscale, BGR, BGRA, 16-bit, float) comes back in one of the two shapes above.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.download import DataError

MODES = ("rgb", "gray")
SAMPLE_PHOTO = "grace_hopper.jpg"
MAX_MEGAPIXELS = 50  # e.g. 8660 x 5773; a 48-megapixel phone photo fits. Decoding costs 3 bytes a pixel and more.
SIZE_LIMIT_HELP = (f"images above {MAX_MEGAPIXELS} megapixels (e.g. 8660 x 5773) are refused before decoding; "
                   "shrink such a photo first")


class ImageTooLarge(DataError):
    """The file declares more pixels than the limit; nothing was decoded."""


def declared_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) as the image file's header declares them, or None for a format Pillow cannot identify.

    Pillow reads only the header here (PNG's IHDR, JPEG's SOF marker, ...); OpenCV has no such call.
    """
    import warnings

    from PIL import Image

    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # ours applies; Pillow's would raise
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return im.size
    except OSError as e:
        if isinstance(e, PermissionError):
            raise
        return None  # not an image Pillow knows (or a broken one): OpenCV decides
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


def exif_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation tag (1..8; 1 = as stored) of a photo, 1 when there is none or it cannot be read.

    Phones store a portrait photo as a landscape one plus this tag; viewers rotate it on display. OpenCV's
    IMREAD_UNCHANGED, which read_image needs (16-bit, alpha), ignores the tag, so read_image applies it itself.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if value in _ORIENT else 1


# numpy versions of the eight EXIF orientations (what PIL.ImageOps.exif_transpose does), for [H, W] or [H, W, C]
_ORIENT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],                # mirrored left-right
    3: lambda a: a[::-1, ::-1],             # upside down
    4: lambda a: a[::-1],                   # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),          # mirrored along the main diagonal
    6: lambda a: np.rot90(a, -1),           # turned a quarter left: turn it a quarter right
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # mirrored along the other diagonal
    8: lambda a: np.rot90(a, 1),            # turned a quarter right: turn it a quarter left
}


def check_size(path: str | os.PathLike, max_megapixels: float = MAX_MEGAPIXELS) -> None:
    """ImageTooLarge if the header of `path` declares more than `max_megapixels` million pixels."""
    size = declared_size(path)
    if size is not None and size[0] * size[1] > max_megapixels * 1e6:
        w, h = size
        raise ImageTooLarge(f"{path} declares {w} x {h} pixels ({w * h / 1e6:.0f} megapixels), above the limit of "
                            f"{max_megapixels:g} megapixels: shrink it first (e.g. to 4000 pixels on the longer side)")


def read_image(path: str | os.PathLike, mode: str = "rgb", *, max_megapixels: float = MAX_MEGAPIXELS) -> np.ndarray:
    """Read an image file: mode "rgb" -> [H, W, 3] uint8 (R, G, B order), mode "gray" -> [H, W] uint8.

    - a greyscale file asked for as rgb has its one channel copied into all three;
    - a transparent image (RGBA, or grey + alpha) is composited onto a white background, which is how
      viewers and browsers show it; simply dropping alpha would expose whatever colour the transparent
      pixels happen to store (often black);
    - 16-bit images are scaled to 0..255 (divided by 257, so 65535 -> 255); float images are taken
      as 0..1 and clipped.
    Raises DataError for a missing path, a folder, an unreadable file, or one OpenCV cannot decode;
    ImageTooLarge (a DataError) for one declaring more than `max_megapixels` million pixels.
    """
    import cv2

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    path = Path(path)
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to the current folder {Path.cwd()})"
        raise DataError(f"no image at {path}{where}: check the path and the file name")
    if not path.is_file():
        raise DataError(f"{path} is a folder, not an image file")
    # imdecode on the file's bytes instead of imread(path): imread cannot open non-ASCII paths on Windows
    # (e.g. 照片.jpg) and would report them as "not an image". The decoding is the same.
    try:
        check_size(path, max_megapixels)
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}): check its permissions") from e
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:  # OpenCV's silent failure: not an image, an unsupported format, or a truncated file
        raise DataError(
            f"{path} is not an image OpenCV can read ({raw.size} bytes; expected e.g. .jpg, .png, .bmp, .tif)"
        )
    image = np.ascontiguousarray(_ORIENT[exif_orientation(path)](image))  # upright, as a viewer shows it
    image = _to_uint8(image)
    rgb = _to_rgb(image)
    if mode == "rgb":
        return rgb
    # The usual luma weights (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B), as cv2 and PIL use.
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def sample_photo_path() -> Path:
    """Path of matplotlib's sample photo (Grace Hopper, 600 x 512 RGB JPEG): a declared dependency, no download."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / SAMPLE_PHOTO
    if not path.is_file():
        raise DataError(
            f"matplotlib's sample photo is missing ({path}); reinstall matplotlib "
            "(`pip install --force-reinstall matplotlib`) or pass your own photo with --image PATH"
        )
    return path


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Any OpenCV depth -> uint8 in 0..255, same shape."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    if image.dtype in (np.float32, np.float64):
        return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if image.dtype == np.int8:
        return (image.astype(np.int16) + 128).astype(np.uint8)
    raise DataError(f"unsupported pixel type {image.dtype}; save the image as 8- or 16-bit PNG or JPEG")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's layouts -> [H, W, 3] RGB uint8: [H, W] grey, [H, W, 1], grey + alpha, BGR, BGRA."""
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 2:  # grey + alpha
        grey = _over_white(image[:, :, :1], image[:, :, 1:])
        return np.repeat(grey, 3, axis=2)
    if channels == 3:
        return np.ascontiguousarray(image[:, :, ::-1])  # BGR -> RGB
    if channels == 4:
        rgb = _over_white(image[:, :, 2::-1], image[:, :, 3:])  # B, G, R, A -> R, G, B over white
        return rgb
    raise DataError(f"an image with {channels} channels is not supported; expected 1 (grey), 3 (colour) or 4 (RGBA)")


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite `color` [H, W, C] uint8 with opacity `alpha` [H, W, 1] uint8 onto white -> [H, W, C] uint8."""
    a = alpha.astype(np.float32) / 255.0
    out = color.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.ascontiguousarray(np.round(out).astype(np.uint8))
