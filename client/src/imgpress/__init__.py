"""The imgpress client: `Client` and `AsyncClient` for an imgpress server, and the `imgpress` command."""

from imgpress.answers import Download, Result
from imgpress.async_client import AsyncClient
from imgpress.base import Retry, RetryPolicy
from imgpress.client import Client
from imgpress.errors import ImgpressError
from imgpress.models import Batch, Event, Job, Options, Rejected

__version__ = "0.2.0"

__all__ = [
    "AsyncClient",
    "Batch",
    "Client",
    "Download",
    "Event",
    "ImgpressError",
    "Job",
    "Options",
    "Rejected",
    "Result",
    "Retry",
    "RetryPolicy",
    "__version__",
]
