"""What one shard run is asked to do: :class:`ShardJob` (inputs, output, mode) and its checks."""

from __future__ import annotations

from dataclasses import dataclass

from softlines_attr.io.storage import parse_uri
from softlines_attr.shard.errors import ShardInputError

ALL_ATTRIBUTES = "all"  # --attribute all: multi shards, one label column per taxonomy attribute


@dataclass(frozen=True)
class ShardJob:
    """What to shard.

    Attributes:
        labels_dir: The label job's output folder (``labels/``, ``vocabulary/``).
        out_dir: Output folder, local or s3://.
        vocab_size: Base-model shards of this vocabulary (0 = all words).
        tags_path: Refine shards: the human tags table.
        attribute: Refine shards: the taxonomy attribute; ``all`` (:data:`ALL_ATTRIBUTES`) for multi
            shards (one class index per taxonomy attribute per record, -1 = no tag).
        catalog_path: Refine shards: the catalog, for images of tagged asins not in the labels table.
    """

    labels_dir: str
    out_dir: str
    vocab_size: int | None = None
    tags_path: str | None = None
    attribute: str | None = None
    catalog_path: str | None = None

    @property
    def mode(self) -> str:
        """``base``, ``refine`` or ``multi`` (tags with attribute ``all``)."""
        if self.tags_path is None:
            return "base"
        return "multi" if self.attribute == ALL_ATTRIBUTES else "refine"

    def validate(self) -> None:
        """Exactly one of base (vocab size) or refine (tags + attribute).

        Raises:
            ShardInputError: naming what was given.
        """
        base = self.vocab_size is not None
        refine = self.tags_path is not None or self.attribute is not None
        if base == refine or (refine and (self.tags_path is None or self.attribute is None)):
            raise ShardInputError(
                "expected either --vocab-size N (base shards) or --tags PATH with --attribute NAME (refine shards), "
                f"found vocab_size={self.vocab_size}, tags={self.tags_path}, attribute={self.attribute}"
            )
        if self.catalog_path is not None and not refine:
            raise ShardInputError(
                f"expected --catalog only with --tags (refine shards), "
                f"found --catalog {self.catalog_path} with --vocab-size"
            )
        if base and self.vocab_size is not None and self.vocab_size < 0:
            raise ShardInputError(f"expected --vocab-size >= 0 (0 = all words), found {self.vocab_size}")
        parse_uri(self.out_dir)  # an unknown scheme is a clear, job-level error
