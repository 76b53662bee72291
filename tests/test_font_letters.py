"""The Font-Letters source (`font_letters_<N>`): its rules on a few fonts
that ship with matplotlib (skipped without Pillow and matplotlib), and the
real set when the Debian package texlive-fonts-extra is installed."""

import os
import shutil

import numpy as np
import pytest

from mpl_tf.data import registry
from mpl_tf.data.sources import font_letters
from mpl_tf.errors import ConfigError

PIL = pytest.importorskip("PIL")


def _matplotlib_fonts():
    matplotlib = pytest.importorskip("matplotlib")
    directory = os.path.join(os.path.dirname(matplotlib.__file__),
                             "mpl-data", "fonts", "ttf")
    fonts = sorted(os.path.join(directory, f) for f in os.listdir(directory)
                   if f.startswith(("DejaVu", "STIXGeneral")))
    if len(fonts) < 14:
        pytest.skip("matplotlib's DejaVu and STIX fonts not found")
    return fonts


def test_render_font_draws_52_letters_or_none():
    fonts = _matplotlib_fonts()
    glyphs = font_letters.render_font(fonts[0])
    assert glyphs.shape == (52, 28, 28) and glyphs.dtype == np.uint8
    for image in glyphs:  # the ink is scaled to a 20-px box, centred
        rows, cols = np.nonzero(image)
        spans = rows.max() - rows.min(), cols.max() - cols.min()
        assert 18 <= max(spans) <= 20
        assert 12 <= (rows.min() + rows.max()) / 2 <= 15
        assert 12 <= (cols.min() + cols.max()) / 2 <= 15
    assert font_letters.render_font(__file__) is None  # not a font


def test_build_caps_directories_excludes_and_deduplicates(tmp_path):
    fonts = _matplotlib_fonts()
    family = tmp_path / "family"
    family.mkdir()
    for path in fonts[:14]:
        shutil.copy(path, family)
    (tmp_path / "semaphor").mkdir()  # excluded by name
    shutil.copy(fonts[0], tmp_path / "semaphor")
    (tmp_path / "zcopy").mkdir()  # the same glyphs again: dropped
    shutil.copy(fonts[0], tmp_path / "zcopy" / "again.ttf")
    paths = [str(p) for p in tmp_path.rglob("*.ttf")]
    grey, labels, used = font_letters.build(paths)
    assert len(used) == font_letters.MAX_PER_DIRECTORY
    assert all("/family/" in p for p in used)
    assert grey.shape == (52 * len(used), 28, 28)
    assert labels[:52].tolist() == list(range(26)) * 2  # A..Z, a..z
    assert np.bincount(labels).tolist() == [2 * len(used)] * 26


def test_splits_fixed_test_no_flips(tmp_path, monkeypatch):
    fonts = _matplotlib_fonts()
    monkeypatch.setattr(font_letters, "TEST_SIZE", 52)
    monkeypatch.setenv("MPL_TF_CACHE", str(tmp_path / "cache"))
    source = font_letters.load(26, seed=3, paths=fonts)
    assert registry.parse("font_letters_260_mpl").source == "font_letters"
    assert (source.image_size, source.channels, source.num_classes) == (
        28, 3, 26)
    assert not source.hflip
    assert np.bincount(source.test.labels).tolist() == [2] * 26
    assert np.bincount(source.labeled.labels).tolist() == [1] * 26
    idx = source.split_indices
    assert not set(idx["test"]) & set(idx["unlabeled"])
    assert set(idx["labeled"]) <= set(idx["unlabeled"])
    assert len(os.listdir(tmp_path / "cache")) == 1  # drawn once, cached
    again = font_letters.load(26, seed=3, paths=fonts)
    assert again.split_indices == idx
    np.testing.assert_array_equal(again.test.images, source.test.images)
    other = font_letters.load(26, seed=4, paths=fonts)
    assert other.split_indices["test"] == idx["test"]  # test never moves
    assert other.split_indices["labeled"] != idx["labeled"]


def test_missing_package_says_how_to_install(tmp_path):
    with pytest.raises(ConfigError, match="apt-get install"):
        font_letters.package_fonts(str(tmp_path / "absent.list"))


@pytest.mark.skipif(not os.path.isfile(font_letters.DPKG_LIST),
                    reason="texlive-fonts-extra is not installed")
def test_the_package_set():
    source = font_letters.load(260, seed=0)
    assert len(source.test) == font_letters.TEST_SIZE
    assert np.bincount(source.test.labels).tolist() == [100] * 26
    assert len(source.unlabeled) + len(source.test) > 30000
