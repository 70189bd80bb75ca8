"""spark-submit entry point of the shard job: ``spark-submit jobs/shard_images.py --labels DIR --out DIR
--vocab-size N``."""

import sys

from softlines_attr.cli import main

if __name__ == "__main__":
    sys.exit(main(["shard", *sys.argv[1:]]))
