"""Data quality: mergeable column profiles, contracts, checks and drift tests."""
