"""Data layer: schema, validated import, sequences and splits, public loaders, sample data."""
