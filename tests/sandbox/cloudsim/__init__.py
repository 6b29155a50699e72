"""The cloud simulator as a package: see app.py."""
