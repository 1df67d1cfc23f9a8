"""The package layout; everything else about the project is in pyproject.toml.

The shipped YAML configs stay in the repository's top-level ``configs/`` folder (their one source) and go
into the wheel as ``sspcmr/configs/``: ``package_dir`` maps the one onto the other, with every folder below it
declared (setuptools ships package data only for declared packages). pyproject.toml cannot combine package
discovery with such a mapping, hence this file. In an editable install the configs are read from
``configs/`` itself (:func:`sspcmr.shipped_configs.configs_root`).
"""

from setuptools import find_namespace_packages, find_packages, setup

CONFIGS = "sspcmr.configs"
CONFIG_FOLDERS = [f"{CONFIGS}.{name}" for name in find_namespace_packages("configs")]

setup(
    packages=[*find_packages(include=["sspcmr", "sspcmr.*"]), CONFIGS, *CONFIG_FOLDERS],
    package_dir={CONFIGS: "configs"},
    package_data={
        "sspcmr": ["py.typed"],
        CONFIGS: ["*.yaml", "*.yml", "README.md"],
        **{folder: ["*.yaml", "*.yml"] for folder in CONFIG_FOLDERS},
    },
)
