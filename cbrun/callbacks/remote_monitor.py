"""RemoteMonitor: POST every epoch's logs to a server."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from cbrun.callbacks.base import CallbackSpec
from cbrun.config.base import BuildContext


class RemoteMonitorSpec(CallbackSpec):
    """POST each epoch's logged values to `root + path` as JSON.

    Same parameters and defaults as `keras.callbacks.RemoteMonitor` (needs the `requests`
    package). A failed request is a warning, not an error: training goes on.
    """

    type: Literal["RemoteMonitor"]
    root: str = Field("http://localhost:9000", description=(
        "The server's base URL, `http://` or `https://`. Defaults to "
        "`http://localhost:9000`."))
    path: str = Field("/publish/epoch/end/", description=(
        "Appended to `root`; starts with `/`. Defaults to `/publish/epoch/end/`."))
    field: str = Field("data", min_length=1, description=(
        "The form field holding the JSON (when `send_as_json` is false). "
        "Defaults to `data`."))
    headers: dict[str, str] | None = Field(None, description=(
        "Extra HTTP headers. Defaults to `None`."))
    send_as_json: bool = Field(False, description=(
        "Send the body as `application/json` instead of a form. Defaults to `false`."))

    summary = "POST every epoch's logged values to an HTTP server."

    @field_validator("root")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"root must be an http:// or https:// URL with a host, such as "
                f"'http://localhost:9000'; got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"root must not hold a query or fragment (put it in `path`); "
                             f"got {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        # Keras concatenates root + path: without the slash the host name gets mangled.
        if not value.startswith("/"):
            raise ValueError(f"path must start with '/', such as '/publish/epoch/end/'; "
                             f"got {value!r}")
        return value

    def build(self, ctx: BuildContext) -> Any:
        import keras

        return keras.callbacks.RemoteMonitor(**self.kwargs(ctx))
