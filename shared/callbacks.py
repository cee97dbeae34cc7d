"""Webhooks: which callback URLs are allowed (public addresses only, checked when given and
before delivery), how a delivery is signed, and queueing it once."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from urllib.parse import urlsplit

from redis import Redis
from rq import Queue

from shared import batches, names
from shared.errors import BadOption, JobExpired, JobNotFound
from shared.schema import owner_of
from shared.settings import Settings

#: Header carrying `sha256=<hex HMAC-SHA256 of "<delivery id>.<timestamp>.<body>">`, keyed
#: with the owner's secret (IMGPRESS_WEBHOOK_KEY_SECRETS) or IMGPRESS_WEBHOOK_SECRET.
SIGNATURE_HEADER = "X-Imgpress-Signature"
#: Header naming what ended: `job` or `batch`.
KIND_HEADER = "X-Imgpress-Event"
#: Header carrying the delivery's unique id (a UUID), signed: a receiver drops repeats.
DELIVERY_HEADER = "X-Imgpress-Delivery"
#: Header carrying when the delivery was signed (Unix seconds), signed: a receiver drops old ones.
TIMESTAMP_HEADER = "X-Imgpress-Timestamp"
#: Seconds one delivery may take in all: address check, connect, send and the reply's status
#: line and headers. The reply's body is never read. The delivery is not retried.
TIMEOUT_SECONDS = 5.0
#: RQ's job timeout of a delivery, a backstop that also stops a DNS lookup that hangs.
JOB_TIMEOUT_SECONDS = int(TIMEOUT_SECONDS) + 3
MAX_URL_LENGTH = 2000


def sign(body: bytes, secret: str, delivery_id: str, timestamp: int) -> str:
    """The signature header's value: HMAC-SHA256 of `<delivery id>.<timestamp>.<body>`."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def secret_for(settings: Settings, owner: str | None) -> str:
    """The secret that signs deliveries for a job or batch of `owner` (an API key's digest)."""
    for key, secret in settings.webhook_key_secrets:
        if owner is not None and hmac.compare_digest(owner_of(key), owner):
            return secret
    return settings.webhook_secret


#: IPv6 ranges whose last 32 bits are an IPv4 address the packet is translated to (NAT64's
#: well-known prefix, RFC 6052): such an address is as public as the IPv4 address it carries.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: IPv6 ranges refused whatever they carry: IPv4-compatible (deprecated, RFC 4291),
#: IPv4-translated (SIIT, RFC 2765), local-use NAT64 (RFC 8215) and site-local (deprecated,
#: RFC 3879) addresses, which reach an IPv4 or local network the checks above cannot see.
_REFUSED_V6 = tuple(
    ipaddress.ip_network(net) for net in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "fec0::/10")
)


def is_public_address(address: str) -> bool:
    """True if a resolved address may be called: public, and so is any IPv4 address it embeds.

    IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::) forms are
    judged by the IPv4 address inside; deprecated and local translation forms are refused.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return is_public_address(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip.sixtofour is not None:
            return is_public_address(str(ip.sixtofour))
        if ip.teredo is not None or any(ip in net for net in _REFUSED_V6):
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_link_local


def check_url(url: str, settings: Settings) -> str:
    """The callback URL if it may be called; BadOption (with the reason) otherwise."""
    if not settings.webhook_secret:
        raise BadOption("Webhooks are off on this server: 'callback_url' cannot be used.")
    if len(url) > MAX_URL_LENGTH:
        raise BadOption("'callback_url' is too long.")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadOption("'callback_url' is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadOption("'callback_url' must be an http:// or https:// URL.")
    if settings.webhook_allow_private:
        return url
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise BadOption(f"The host of 'callback_url' ({parts.hostname}) cannot be resolved.") from None
    if not all(is_public_address(str(info[4][0])) for info in found):
        raise BadOption("'callback_url' must point at a public address, not a private or local one.")
    return url


def enqueue_delivery(connection: Redis, settings: Settings, kind: str, resource_id: str) -> bool:
    """Queue the one webhook delivery of a job or batch that ended; False if it was already queued."""
    claimed = connection.set(names.delivered_key(kind, resource_id), "1", nx=True, ex=names.GONE_SECONDS)
    if not claimed:
        return False
    Queue(names.WEBHOOK_QUEUE, connection=connection).enqueue(
        names.DELIVER_TASK,
        kind,
        resource_id,
        job_timeout=JOB_TIMEOUT_SECONDS,
        result_ttl=settings.retention_seconds,
        failure_ttl=settings.retention_seconds,
        description=f"webhook for {kind} {resource_id}",
    )
    return True


def announce_batch_if_done(connection: Redis, settings: Settings, batch_id: str) -> None:
    """Queue a batch's webhook once all its jobs have ended (harmless if called again)."""
    try:
        batch = batches.load(connection, batch_id)
    except (JobNotFound, JobExpired):
        return
    if batch.callback_url and batches.is_done(connection, batch):
        enqueue_delivery(connection, settings, "batch", batch_id)
