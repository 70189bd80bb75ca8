"""Command-line glue, one module per subcommand; see ``softlines_attr.cli``."""
