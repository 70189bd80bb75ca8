"""Input and output: reading tables, committing outputs, storage and fetching."""
