"""A oneM2M-style CSE with a Session Management CSF (SMG).

Layers (dependencies point down): ``cse.app`` -> ``cse.binding``, ``cse.csf``,
``cse.store`` -> ``cse.core`` -> ``cse_resources`` (the repository's ``resources/``).
"""

__version__ = "0.1.0"
