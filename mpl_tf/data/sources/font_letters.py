"""Font-Letters: the 26 letters (both cases, one class per letter) drawn
from ~800 typefaces as 28x28 grey images, offline (a notMNIST-like set).

A third proxy, unlike digits (handwritten) and Animal-Shape (filled
silhouettes): thin strokes, serif / sans / script / blackletter / display
faces, two shapes per class (A and a). The glyphs come from the fonts of
the Debian package `texlive-fonts-extra` (2022.20230122, Debian main, so
every font is under a free licence: SIL OFL, GPL with the font exception,
LPPL, ...; see /usr/share/doc/texlive-fonts-extra/copyright). Install it
with `apt-get install --no-install-recommends texlive-fonts-extra`. We read
the package's own file list (dpkg's texlive-fonts-extra.list), never TeX.

The images are not stored in the package: they are the package's glyph
outlines drawn by Pillow's FreeType (pip package `pillow`) in a fixed way
(`render_font`): each letter at 64 px, cropped to its ink, scaled so that
its longer side is 20 px (Lanczos) and centred in 28x28, white on black,
like MNIST. The image set is a function of the package version and of
FreeType (pixel values may move by a grey level or so between FreeType
versions; which glyph is a test image does not).

Which fonts: every OpenType/TrueType file of the package that draws all 52
letters (`A`-`Z`, `a`-`z`, none of them the font's missing-glyph box),
less four symbol sets whose letters are pictures (semaphore flags, icons,
country maps, arrows), at most 12 a directory (a family's weights and
optical sizes would otherwise dominate: evenly spaced in name order), and
no font whose 52 images equal an earlier one's. 2022.20230122-4 gives 774
fonts (of its 1,679 font files), 40,248 images. Class = letter, upper and lower case together.

A fixed class-balanced test split of 2,600 images (100 a letter); the rest
is the training pool of 37,648 (`arrays.py`). Rendering takes ~16 s; the arrays are
cached in $MPL_TF_CACHE (default ~/.cache/mpl_tf). Letters do not keep
their class when mirrored (b/d, p/q): no horizontal flips.
"""

import hashlib
import os
import string

import numpy as np

from mpl_tf.data.sources.bundled import partitioned_source
from mpl_tf.errors import ConfigError

NUM_CLASSES = 26
IMAGE_SIZE = 28
TEST_SIZE = 2600
PACKAGE = "texlive-fonts-extra"
DPKG_LIST = f"/var/lib/dpkg/info/{PACKAGE}.list"
LETTERS = string.ascii_uppercase + string.ascii_lowercase
MAX_PER_DIRECTORY = 12
# Directories whose fonts draw pictures, not letters, at A-Z / a-z.
EXCLUDED_DIRECTORIES = ("semaphor", "fontawesome5", "countriesofeurope",
                        "asapsym")
# Fixed forever: changing any of these would move images between test and
# train or change them.
_TEST_SPLIT_SEED = 20261206
_RENDER = {"font_px": 64, "canvas": 224, "box": 20, "version": 1}


def package_fonts(list_file=DPKG_LIST):
    """The package's .otf/.ttf files, in name order."""
    if not os.path.isfile(list_file):
        raise ConfigError(
            "--dataset_name=font_letters_*: the glyphs come from the Debian "
            f"package {PACKAGE}, which is not installed; run apt-get install "
            f"--no-install-recommends {PACKAGE} (and pip install "
            "-e '.[bench]' for Pillow)")
    with open(list_file, encoding="utf-8") as f:
        paths = [line.strip() for line in f]
    return sorted(p for p in paths
                  if p.lower().endswith((".otf", ".ttf")) and os.path.isfile(p))


def _draw(font, char):
    from PIL import Image, ImageDraw

    size = _RENDER["canvas"]
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), char, font=font,
                                fill=255, anchor="mm")
    return canvas


def _to_28(canvas):
    from PIL import Image

    glyph = canvas.crop(canvas.getbbox())
    width, height = glyph.size
    scale = _RENDER["box"] / max(width, height)
    glyph = glyph.resize((max(1, round(width * scale)),
                          max(1, round(height * scale))), Image.LANCZOS)
    out = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    out.paste(glyph, ((IMAGE_SIZE - glyph.size[0]) // 2,
                      (IMAGE_SIZE - glyph.size[1]) // 2))
    return np.asarray(out, dtype=np.uint8)


def render_font(path):
    """The font's 52 letters as uint8 [52, 28, 28] (A..Z, a..z), or None if
    it cannot be read or lacks one of them (draws its missing-glyph box or
    nothing)."""
    from PIL import ImageFont

    try:
        font = ImageFont.truetype(path, _RENDER["font_px"])
        missing = _draw(font, "\U0010fffd").tobytes()
        canvases = []
        for char in LETTERS:
            canvas = _draw(font, char)
            if canvas.getbbox() is None or canvas.tobytes() == missing:
                return None
            canvases.append(canvas)
    except (OSError, ValueError):
        return None
    return np.stack([_to_28(c) for c in canvases])


def _spread(items, k):
    """At most k of `items`, evenly spaced in their order."""
    if len(items) <= k:
        return list(items)
    picks = np.round(np.linspace(0, len(items) - 1, k)).astype(int)
    return [items[i] for i in picks]


def build(paths):
    """(grey uint8 [n, 28, 28], labels int32 [n], fonts [k]) from font
    files, by the rules of the module docstring."""
    by_directory = {}
    for path in paths:
        directory = os.path.basename(os.path.dirname(path))
        if directory not in EXCLUDED_DIRECTORIES:
            by_directory.setdefault(directory, []).append(path)
    images, fonts, seen = [], [], set()
    for directory in sorted(by_directory):
        drawn = []
        for path in by_directory[directory]:
            glyphs = render_font(path)
            if glyphs is not None:
                drawn.append((path, glyphs))
        for path, glyphs in _spread(drawn, MAX_PER_DIRECTORY):
            digest = hashlib.sha1(glyphs.tobytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            images.append(glyphs)
            fonts.append(path)
    if not images:
        return (np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8),
                np.zeros((0,), np.int32), [])
    labels = np.tile(np.arange(len(LETTERS)) % NUM_CLASSES, len(images))
    return np.concatenate(images), labels.astype(np.int32), fonts


def _cache_path(paths):
    import PIL
    from PIL import features

    key = hashlib.sha1(repr((
        sorted(paths), [os.path.getsize(p) for p in sorted(paths)],
        sorted(_RENDER.items()), MAX_PER_DIRECTORY, EXCLUDED_DIRECTORIES,
        PIL.__version__, features.version("freetype2"))).encode())
    root = os.environ.get("MPL_TF_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "mpl_tf")
    return os.path.join(root, f"font_letters-{key.hexdigest()[:16]}.npz")


def read(paths=None, cache=True):
    """(images uint8 [n, 28, 28, 3], labels int32 [n]) of the package's
    fonts (or of `paths`, font files)."""
    try:
        import PIL  # noqa: F401  (is Pillow installed?)
    except ImportError as err:
        raise ConfigError(
            "--dataset_name=font_letters_*: drawing the letters needs "
            "Pillow; run pip install -e '.[bench]' (or pip install pillow)"
        ) from err
    paths = package_fonts() if paths is None else sorted(paths)
    path = _cache_path(paths) if cache else None
    if path and os.path.isfile(path):
        with np.load(path) as stored:
            grey, labels = stored["grey"], stored["labels"]
    else:
        grey, labels, _ = build(paths)
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp.npz"
            np.savez_compressed(tmp, grey=grey, labels=labels)
            os.replace(tmp, path)
    if len(grey) < TEST_SIZE + NUM_CLASSES:
        raise ConfigError(
            f"font_letters: only {len(grey)} images from {len(paths)} font "
            f"files; is {PACKAGE} fully installed?")
    return np.repeat(grey[..., None], 3, axis=-1), labels


def load(num_labeled, seed, num_val=0, labeled_in_unlabeled=True,
         paths=None, cache=True):
    images, labels = read(paths, cache)
    return partitioned_source(
        "font_letters", images, labels, NUM_CLASSES, TEST_SIZE,
        _TEST_SPLIT_SEED, num_labeled, seed, num_val=num_val,
        labeled_in_unlabeled=labeled_in_unlabeled,
        hflip=False, fill=0.0, cutout_fraction=0.5)


def from_config(name, cfg):
    """The registry's entry point (`font_letters_<N>[_uda|_mpl]`)."""
    return load(name.num_labeled, cfg.seed, num_val=cfg.num_val,
                labeled_in_unlabeled=cfg.labeled_in_unlabeled)
