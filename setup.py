"""Packaging for softlines-attr.

Pins, and why:
  * mxnet==1.9.1      the last MXNet release; its wheels are built against numpy < 1.24
                      (it uses ``np.bool``/``np.object`` aliases that numpy 1.24 removed).
  * numpy<1.24        forced by mxnet 1.9.1 (see above).
  * pyarrow>=18,<22   pyspark 4 needs pyarrow >= 18 for Arrow batches; pyarrow >= 22 needs numpy 2.
  * pyspark>=4.0,<5   the Spark 4 API (Java 17+); EMR 7.x ships Spark 3.5/4, jobs use only stable APIs.
  * pandas>=2,<3      pyspark 4's pandas interop targets pandas 2; pandas 3 needs numpy >= 1.26.
  * ruff 0.17.x       (tests) the formatter's output changes between minor versions; `make test` checks it.
On GPU nodes the EMR bootstrap installs ``mxnet-cu112==1.9.1`` in place of ``mxnet``.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _conf_files() -> list[tuple[str, list[str]]]:
    """Ship ``conf/`` as data files so an installed wheel has its defaults."""
    groups: dict[str, list[str]] = {}
    for path in sorted((HERE / "conf").rglob("*")):
        if path.is_file():
            rel = path.relative_to(HERE)
            groups.setdefault(str(Path("share/softlines-attr") / rel.parent), []).append(str(rel))
    return sorted(groups.items())


setup(
    name="softlines-attr",
    version="0.1.0",
    description="Batch visual-attribute tagging of fashion product images (Spark + MXNet).",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["softlines_attr", "softlines_attr.*"]),
    package_data={"softlines_attr.score": ["contract/*.json"]},  # the scoring tables' versioned contract
    data_files=_conf_files(),
    install_requires=[
        "mxnet==1.9.1",
        "numpy>=1.23,<1.24",
        "pyarrow>=18,<22",
        "pyspark>=4.0,<5",
        "pandas>=2.0,<3",
        "pillow>=10",
        "boto3>=1.34",
    ],
    extras_require={
        # opencv: mxnet.recordio.unpack_img (the tests read shards back with MXNet's own reader) needs cv2;
        # 4.10 is the last line whose wheels accept numpy 1.23.
        # ruff: lint and format check of `make test`, pinned to a minor version so its formatting cannot drift.
        "test": ["pytest>=8", "moto[server]>=5.0", "opencv-python-headless>=4.8,<4.11", "ruff>=0.17,<0.18"],
        # xxhash: the label benchmark's DuckDB reference splits by parent with Spark's xxhash64, bit for bit.
        "bench": ["duckdb>=1.0", "xxhash>=3"],
    },
    entry_points={"console_scripts": ["softlines-attr=softlines_attr.cli:main"]},
)
