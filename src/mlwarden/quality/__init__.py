"""Data quality: mergeable column profiles (and, later, contracts, checks and drift tests)."""
