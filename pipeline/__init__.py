"""Clean scraped articles: boilerplate removal, normalisation, exact and near-duplicate detection."""

__version__ = "0.1.0"
