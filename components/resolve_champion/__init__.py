"""resolve_champion: what production knows, for validate_data to hold a new span to (TFX's resolver node)."""
