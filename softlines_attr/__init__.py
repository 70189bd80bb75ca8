"""softlines-attr: batch visual-attribute tagging of fashion product images (Spark + MXNet)."""

__version__ = "0.1.0"
