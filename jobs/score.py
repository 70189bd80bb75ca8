"""spark-submit entry point of the scoring job: ``spark-submit jobs/score.py --catalog PATH --models DIR [DIR
...] --out DIR``."""

import sys

from softlines_attr.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
