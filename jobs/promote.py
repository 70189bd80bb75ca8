"""EMR entry point of the promotion gate; the same arguments as ``softlines-attr promote``.

    spark-submit jobs/promote.py --candidate s3://bucket/models/evaluated/ --shards s3://bucket/shards/multi/ \
        --models s3://bucket/models/registry/ [--run-id ID]

No Spark: promote reads its S3 inputs' committed versions itself and commits the registry's pointer itself.
"""

import sys

from softlines_attr.cli import main

if __name__ == "__main__":
    sys.exit(main(["promote", *sys.argv[1:]]))
