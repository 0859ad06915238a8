"""The `pacs` commands other than `serve`, each run by `pacs/__main__.py` once chosen (so
choosing `serve` never imports what they need)."""
