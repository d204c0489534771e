"""SQL in plain functions, one module per table family: sealed values in and out, no plaintext."""
