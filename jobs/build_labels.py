"""spark-submit entry point of the label job; the same arguments as ``softlines-attr labels``.

    spark-submit jobs/build_labels.py --catalog s3://bucket/catalog/ --out s3://bucket/labels/ [--conf FILE]

Without spark-submit it runs on ``local[*]`` (the conf's Spark profile).
"""

import sys

from softlines_attr.cli import main

if __name__ == "__main__":
    sys.exit(main(["labels", *sys.argv[1:]]))
