"""Built-in cxrbench plugins. They register through the `cxrbench` entry-point group exactly
as third-party plugins do (see pyproject.toml), one module per extension kind."""
