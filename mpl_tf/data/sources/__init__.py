"""The data sources --dataset_name can name (registry.py) and a user's own
arrays: each hands the input pipeline a `Source`."""
