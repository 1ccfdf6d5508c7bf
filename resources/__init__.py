"""Resource type declarations: data only (``types/*.json``, ``schemas/*.json``).

Installed as the package ``cse_resources`` (setup.py), never as a top-level
``resources``; :mod:`cse.core.declarations` reads it.
"""
