"""spark-submit entry point of distributed training: ``spark-submit jobs/train_dist.py --num-workers N --shards
DIR --out s3://... [train options]``.

One Spark barrier stage of N tasks, each a ps-lite worker (plus its servers; task 0 also the
scheduler) on its node's GPU; see docs/EMR.md, "Distributed training". ``--kv-store`` defaults to
``dist_sync`` here; any train option given on the command line wins.
"""

import sys

from softlines_attr.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--launch", "spark", "--kv-store", "dist_sync", *sys.argv[1:]]))
