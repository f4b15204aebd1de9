"""The workflows package's errors: a catalog that cannot be loaded, and request values that do not fit."""

from __future__ import annotations

from comfyws.config import ConfigError


class CatalogError(ConfigError):
    """A workflow graph or mapping that cannot be used; the message names task type, workflow and key."""


class UnknownWorkflowError(CatalogError):
    """A request named a task type or workflow the catalog does not have; the message lists the known ones."""


class ParameterError(ValueError):
    """A request value that is unknown, of the wrong type or out of bounds; `field` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
