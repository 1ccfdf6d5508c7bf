"""Packaging beyond setup.cfg: the repository's ``resources/`` folder is
installed as ``cse_resources`` (cse.core.declarations), so ``pip install``
never puts a package named ``resources`` at the top level of site-packages."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["cse", "cse.*", "ae_sdk", "ae_sdk.*"]), "cse_resources"],
    package_dir={"cse_resources": "resources"},
    package_data={"cse_resources": ["types/*.json", "types/*/*.json", "schemas/*.json"],
                  # the web console's static files (cse.binding.webui_http, docs/webui.md)
                  "cse": ["webui/*.html", "webui/*.js", "webui/*.css"]},
)
