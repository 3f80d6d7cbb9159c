"""One exception hierarchy for everything that can go wrong between a graph and DashScope.

Catch `WanError` for all of it, or a family for one kind of trouble. Every exception carries what a user
needs to act on it (code, HTTP status, request_id, task_id, where the request went) and its message says
what happened and what to do. No message ever holds the API key: `secrets.redact` runs over every one.
"""

from __future__ import annotations

from typing import Any

from .money.billing import maybe
from .secrets import redact

__all__ = [
    "WanError", "WanInputError", "ConfigError", "MissingApiKeyError", "InvalidApiKeyError", "WanAPIError", "InvalidParameterError",
    "ContentModerationError", "ArrearageError", "AuthenticationError", "AccessDeniedError", "ModelNotFoundError",
    "RequestTimeoutError", "RateLimitError", "ServerError", "ServiceUnavailableError", "TaskFailedError",
    "TaskCanceledError", "TaskExpiredError", "WanConnectionError", "WanTimeoutError", "StreamCutError",
    "DownloadError", "NoPictureError", "Interrupted", "api_error", "family_for",
]


class WanError(Exception):
    """Base of every error this pack raises."""

    #: What a user can do about it; a family sets its own.
    hint: str = ""
    #: What had arrived (and was paid for) when a stream stopped early: a WanResult, or None.
    partial: Any = None
    #: Whether it cost money (api.money.billing.Billing), put here by whoever knew; None: not decided by the raiser.
    billing: Any = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        task_id: str | None = None,
        endpoint: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.code = code
        self.status = status
        self.request_id = request_id
        self.task_id = task_id
        self.endpoint = endpoint
        if hint is not None:
            self.hint = hint
        self.detail = redact(message)
        super().__init__(self._compose())

    def _compose(self) -> str:
        sentences = [f"{self.code} — {self.detail}" if self.code else self.detail]
        if self.hint:
            sentences.append(self.hint)
        text = ". ".join(s.rstrip(". ") for s in sentences) + "."
        ids = []
        if self.status:
            ids.append(f"HTTP {self.status}")
        if self.request_id:
            ids.append(f"request_id {self.request_id}")
        if self.task_id:
            ids.append(f"task_id {self.task_id}")
        if self.endpoint:
            ids.append(f"sent to {self.endpoint}")
        if ids:
            text += " (" + ", ".join(ids) + ")"
        return redact(text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class WanInputError(WanError, ValueError):
    """Refused before anything was sent: an input breaks a limit of the chosen model.

    `param` names the input (as the node and the vendor call it), `limit` says the rule.
    """

    def __init__(self, param: str, limit: str) -> None:
        self.param = param
        self.limit = limit
        super().__init__(f"{param}: {limit}", hint="Nothing was sent and nothing was billed")


class ConfigError(WanError):
    """The pack is not set up: no API key, an unknown region, a malformed base URL."""


class MissingApiKeyError(ConfigError):
    hint = (
        "Type the key into ComfyUI's settings (Settings, Wan (DashScope): one key per region, or one for all "
        "regions), or set the environment variable DASHSCOPE_API_KEY (DASHSCOPE_API_KEY_BEIJING etc. for one "
        "region) before starting ComfyUI, or put the key in the file named by DASHSCOPE_API_KEY_FILE_PATH, or "
        "in ~/.dashscope/api_key. Keys are per region (Singapore, Virginia, Beijing). To try the pack offline, "
        "run its emulator and set DASHSCOPE_HTTP_BASE_URL to it (see the pack's docs/emulator.md)"
    )


class InvalidApiKeyError(ConfigError):
    """A key was found but cannot be used as it is (not ASCII, a space inside, empty)."""

    hint = ("Nothing was sent and nothing was billed. Put the key where the README's list says (environment, "
            "key file, or ComfyUI's settings: Wan (DashScope)) as it appears in the Model Studio console")


# ---- the service said no -------------------------------------------------------------------------

class WanAPIError(WanError):
    """DashScope answered with an error code. `partial`: what a stream had delivered before its error frame."""


class InvalidParameterError(WanAPIError):
    hint = "The service refused a parameter; the message says which. Nothing was billed"


class ContentModerationError(WanAPIError):
    hint = (
        "The prompt, an input image or a generated image failed the service's content check. Change the "
        "prompt or the pictures; failed generations are not billed"
    )


class ArrearageError(WanAPIError):
    hint = "The Model Studio account is out of credit; top it up in the console of this key's region"


class AuthenticationError(WanAPIError):
    hint = (
        "The key is wrong, revoked, or belongs to another region (keys of Singapore, Virginia and Beijing "
        "are separate). Check DASHSCOPE_API_KEY and the region"
    )


class AccessDeniedError(WanAPIError):
    hint = "This key may not use this model or endpoint; activate the model for the key's region in the console"


class ModelNotFoundError(WanAPIError):
    hint = "The service does not know this model in this region; pick another model or region"


class RequestTimeoutError(WanAPIError):
    hint = "The service timed out; queue the graph again"


class RateLimitError(WanAPIError):
    hint = "Too many requests or out of quota for now; the pack waited and retried, queue again later"


class ServerError(WanAPIError):
    hint = "A fault on the service's side; the pack retried where that was safe. Queue again later"


class ServiceUnavailableError(ServerError):
    hint = "The model is busy or unavailable right now; queue again later"


class TaskFailedError(WanAPIError):
    """A task ended FAILED with a code that has no family of its own."""

    hint = "The generation failed at the service; failed images are not billed"


class TaskCanceledError(WanError):
    hint = "The task was canceled before it ran; nothing was billed"


class TaskExpiredError(WanError):
    hint = (
        "The service no longer knows this task (task ids and result URLs live 24 hours, or the id is wrong)"
    )


# ---- the conversation broke -----------------------------------------------------------------------

class WanConnectionError(WanError):
    """The network failed. `maybe_billed`: the service may have accepted the request (its `billing` says so)."""

    def __init__(self, message: str, *, maybe_billed: bool = False, **kw: Any) -> None:
        if maybe_billed:
            self.billing = maybe("the connection failed after the request was sent")
            if "hint" not in kw:
                kw["hint"] = (
                    "The request had been sent when the connection failed, so the service may have accepted and "
                    "billed it; it was NOT sent again, so as not to pay twice"
                )
        super().__init__(message, **kw)

    @property
    def maybe_billed(self) -> bool:
        return bool(self.billing is not None and self.billing.unsure)


class WanTimeoutError(WanConnectionError):
    pass


class StreamCutError(WanConnectionError):
    """An SSE stream ended (or went silent) before its final frame. `partial` holds what had arrived."""

    def __init__(self, message: str, *, partial: Any = None, **kw: Any) -> None:
        self.partial = partial
        super().__init__(message, **kw)


class DownloadError(WanError):
    """A result picture could not be fetched or is not a valid picture."""


class NoPictureError(WanError):
    """The service answered without a picture where pictures were the point (every picture filtered, a stream
    that ended with none). The message names the model and says what was billed."""

    hint = "Change the prompt, the inputs or the seed and queue again"


class Interrupted(WanError):
    """The wait was stopped by the user (ComfyUI's interrupt). `task_canceled`: a PENDING task was canceled."""

    task_canceled = False


# code -> family, for both request errors and task failures.
_BY_CODE: dict[str, type[WanAPIError]] = {
    "InvalidParameter": InvalidParameterError,
    "DataInspectionFailed": ContentModerationError,
    "IPInfringementSuspect": ContentModerationError,
    "Arrearage": ArrearageError,
    "InvalidApiKey": AuthenticationError,
    "AccessDenied": AccessDeniedError,
    "AccessDenied.Unpurchased": AccessDeniedError,
    "Model.AccessDenied": AccessDeniedError,
    "ModelNotFound": ModelNotFoundError,
    "RequestTimeOut": RequestTimeoutError,
    "Throttling": RateLimitError,
    "Throttling.RateQuota": RateLimitError,
    "Throttling.AllocationQuota": RateLimitError,
    "InternalError": ServerError,
    "InternalError.Timeout": ServerError,
    "SystemError": ServerError,
    "ModelUnavailable": ServiceUnavailableError,
}

_BY_STATUS: dict[int, type[WanAPIError]] = {
    400: InvalidParameterError,
    401: AuthenticationError,
    403: AccessDeniedError,
    404: ModelNotFoundError,
    408: RequestTimeoutError,
    429: RateLimitError,
    500: ServerError,
    502: ServerError,
    503: ServiceUnavailableError,
    504: ServerError,
}


def family_for(code: str | None, status: int | None) -> type[WanAPIError]:
    if code:
        if code in _BY_CODE:
            return _BY_CODE[code]
        # Families share a prefix: "Throttling.Something" is still throttling.
        prefix = code.split(".", 1)[0]
        if prefix in _BY_CODE:
            return _BY_CODE[prefix]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return WanAPIError


def api_error(
    code: str | None,
    message: str | None,
    *,
    status: int | None = None,
    request_id: str | None = None,
    task_id: str | None = None,
    endpoint: str | None = None,
    task_failed: bool = False,
) -> WanAPIError:
    cls = family_for(code, None if task_failed else status)
    if task_failed and cls is WanAPIError:
        cls = TaskFailedError
    return cls(
        message or "(the service gave no message)",
        code=code or None,
        status=status,
        request_id=request_id,
        task_id=task_id,
        endpoint=endpoint,
    )
