"""Install mpl_tf: `pip install -e .` (training) or `pip install -e '.[test]'`."""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements():
    lines = (_HERE / "requirements.txt").read_text().splitlines()
    return [l.strip() for l in lines if l.strip() and not l.startswith("#")]


setuptools.setup(
    name="mpl_tf",
    version="0.1.0",
    description="Meta Pseudo Labels in Keras 3 on TensorFlow 2",
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["mpl_tf", "mpl_tf.*"]),
    python_requires=">=3.10",
    install_requires=_requirements(),
    extras_require={"test": ["pytest>=7", "pytest-timeout>=2",
                             # two test processes (pytest.ini): most tests
                             # wait on one thread (imports, tracing)
                             "pytest-xdist>=3",
                             # tests/test_notebook.py runs the Colab notebook
                             "nbclient>=0.7", "nbformat>=5.7",
                             "ipykernel>=6",
                             # the linter .ci/run runs (ruff.toml)
                             "ruff>=0.6"],
                    # benchmarks/accuracy.py draws its plot with it;
                    # animal-mnist ships the Animal-Shape images; Pillow
                    # draws Font-Letters (its fonts: the Debian package
                    # texlive-fonts-extra, mpl_tf/data/sources/font_letters.py)
                    "bench": ["matplotlib>=3.7", "animal-mnist==0.4",
                              "pillow>=10"]},
    entry_points={"console_scripts": ["mpl_tf=mpl_tf.main:run_cli"]},
)
