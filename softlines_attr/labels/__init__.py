"""The label job: title-word vocabularies and weak multi-labels per ASIN."""
