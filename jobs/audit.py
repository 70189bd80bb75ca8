"""spark-submit entry point of the production audit; the same arguments as ``softlines-attr audit``.

spark-submit jobs/audit.py --scores s3://bucket/attributes/ --tags s3://bucket/audit-tags/ --out s3://bucket/audit/
"""

import sys

from softlines_attr.cli import main

if __name__ == "__main__":
    sys.exit(main(["audit", *sys.argv[1:]]))
