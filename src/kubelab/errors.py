"""User-facing errors: the CLI prints their message (and hint) and exits non-zero, no traceback."""

from __future__ import annotations


class KubelabError(Exception):
    """An error the user can act on. `hint` says what to do next."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  → {self.hint}"


class LabFileError(KubelabError):
    """A lab.yaml that cannot be loaded: names the file, line and field."""


class UnknownLabError(KubelabError):
    """No lab of that name."""


class ContextRefusedError(KubelabError):
    """The current kubeconfig context is not a recognised local training cluster."""


class ClusterUnreachableError(KubelabError):
    """The API server does not answer."""


class MissingToolError(KubelabError):
    """A program the labs need (kubectl, helm, docker...) is not on PATH."""
