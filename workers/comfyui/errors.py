"""Errors of the ComfyUI client: retryable node trouble versus final verdicts on a prompt."""

from __future__ import annotations

from workers.comfyui.models import NodeError, NodeOutput, ValidationFailure


class ComfyUIError(Exception):
    """Base of every error this client raises."""


class NodeUnavailable(ComfyUIError):
    """The node did not answer properly (refused, 5xx, socket timeout): retry on another node."""

    def __init__(self, message: str, *, base_url: str = "") -> None:
        super().__init__(message)
        self.base_url = base_url


class PromptLost(NodeUnavailable):
    """The prompt is in neither queue nor history: the node restarted and forgot it."""

    def __init__(self, prompt_id: str, *, base_url: str = "") -> None:
        super().__init__(
            f"prompt {prompt_id} is in neither queue nor history of {base_url}", base_url=base_url
        )
        self.prompt_id = prompt_id


class NodeTimeout(NodeUnavailable):
    """No progress within a deadline: the node hangs."""

    def __init__(self, message: str, *, prompt_id: str, base_url: str = "") -> None:
        super().__init__(message, base_url=base_url)
        self.prompt_id = prompt_id


class OutputMissing(ComfyUIError):
    """`/view` answered 404: the file is not on the node."""


class PromptRejected(ComfyUIError):
    """The node refused the graph at validation; retrying the same graph cannot help."""

    def __init__(
        self,
        *,
        error_type: str,
        message: str,
        details: str = "",
        node_errors: dict[str, NodeError] | None = None,
        prompt_id: str | None = None,
    ) -> None:
        self.error_type = error_type
        self.message = message
        self.details = details
        self.node_errors = node_errors or {}
        self.prompt_id = prompt_id
        super().__init__(self.summary)

    @classmethod
    def from_failure(cls, failure: ValidationFailure, *, prompt_id: str | None = None) -> PromptRejected:
        """Build from a parsed 400 body."""
        return cls(
            error_type=failure.error.type,
            message=failure.error.message,
            details=failure.error.details,
            node_errors=failure.node_errors,
            prompt_id=prompt_id,
        )

    @property
    def node_message(self) -> str:
        """What ComfyUI said, its own message first, then each failing graph node and input."""
        return self.summary.split(": ", 1)[1] if self.summary.startswith(f"{self.error_type}: ") else self.summary

    @property
    def summary(self) -> str:
        """One line a person can act on, naming each failing node and input."""
        parts = [f"{self.error_type}: {self.message}" + (f" ({self.details})" if self.details else "")]
        for node_id, node_error in sorted(self.node_errors.items()):
            for error in node_error.errors:
                where = f"node {node_id} ({node_error.class_type})"
                if error.input_name:
                    where += f" input '{error.input_name}'"
                parts.append(f"{where}: {error.message}" + (f" [{error.details}]" if error.details else ""))
        return "; ".join(parts)


# Exceptions of a prompt's run that say the machine is in trouble, not the graph: out of memory, a broken GPU, and
# the simulated node's injected fault. Any other execution error (a corrupt input image, a bad value, a missing
# file) would happen on every node: the job fails at once instead of being retried elsewhere.
_NODE_FAULT_TYPES = ("OutOfMemoryError", "MemoryError", "AcceleratorError", "CudaError", "SimulatedFailure")
_NODE_FAULT_MESSAGES = ("out of memory", "cuda error", "cudnn_status", "device-side assert", "hip error",
                        "mps backend", "illegal memory access", "no cuda gpus")


class ExecutionFailed(ComfyUIError):
    """A node raised while the prompt ran; `outputs` holds what nodes before it produced."""

    def __init__(
        self,
        *,
        prompt_id: str,
        node_id: str | None,
        node_type: str | None,
        exception_type: str,
        exception_message: str,
        outputs: dict[str, NodeOutput] | None = None,
    ) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.outputs = outputs or {}
        super().__init__(
            f"node {node_id} ({node_type}) failed: {exception_type}: {exception_message.strip()}"
        )

    @property
    def node_fault(self) -> bool:
        """The machine failed (out of memory, GPU error), not the graph: another node may well succeed."""
        kind = self.exception_type.rsplit(".", 1)[-1]
        message = self.exception_message.lower()
        return kind in _NODE_FAULT_TYPES or any(marker in message for marker in _NODE_FAULT_MESSAGES)

    @property
    def node_message(self) -> str:
        """What ComfyUI said, first: the exception, then where in the graph it was raised."""
        return f"{self.exception_type}: {self.exception_message.strip()} (in {self.node_type} {self.node_id})"


class PromptInterrupted(ComfyUIError):
    """The prompt was interrupted (by us or by someone else) before it finished."""

    def __init__(self, *, prompt_id: str, node_id: str | None = None, node_type: str | None = None) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        super().__init__(f"prompt {prompt_id} interrupted at node {node_id} ({node_type})")
