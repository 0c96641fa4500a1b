"""One module per artifact family; each registers its parsers with ``pipeline.registry``."""
