"""CSV import of clients: upload, map columns, preview, then a background run in batches."""
