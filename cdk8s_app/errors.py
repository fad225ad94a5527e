"""User-facing errors: one base class, caught by the CLI and printed without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or missing tooling. The CLI prints it on one line and exits with ``exit_code``."""

    exit_code = 2


class ConfigError(UserError):
    """An environment file is invalid: names the file, the path inside it and the fix."""

    def __init__(self, file: str, path: str, problem: str, fix: str, line: int | None = None) -> None:
        self.file = file
        self.path = path
        self.problem = problem
        self.fix = fix
        self.line = line
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {path or '<root>'}: {problem} (fix: {fix})")


class ToolMissingError(UserError):
    """An external tool (kubeconform, promtool, ...) is not installed."""

    def __init__(self, tool: str, install: str) -> None:
        super().__init__(f"{tool} not found; install it with: {install}")
