"""Build hook: the e-mail templates stay in templates/ at the top of the project, and the wheel ships a copy of them
inside the package as digest/email_templates/, so that a plain (non-editable) `pip install .` renders and sends.

Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATES = Path(__file__).resolve().parent / "templates"


class BuildPyWithTemplates(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads templates/ where it is
            return
        target = Path(self.build_lib) / "digest" / "email_templates"
        shutil.copytree(TEMPLATES, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithTemplates})
