"""The daemon's consume loop and what it does with each batch."""
