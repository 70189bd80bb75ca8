"""EMR entry point of ``softlines-attr evaluate``: the same arguments, its S3 inputs copied to the node first.

    spark-submit jobs/evaluate.py <the arguments of softlines-attr evaluate> [--run-id ID]

Staged (softlines_attr/emr/node.py): each s3:// input's committed version is copied to local disk, the
command runs, and (unless the command commits its own output) its --out is committed as runs/<run_id>/.
"""

import sys

from softlines_attr.emr.node import run_step

if __name__ == "__main__":
    sys.exit(run_step(__file__, sys.argv[1:]))
