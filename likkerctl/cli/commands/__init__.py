"""One module per noun of the CLI; each is a thin layer over the core."""
