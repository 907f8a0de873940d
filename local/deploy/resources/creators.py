"""The table of resource creators and what they share: the emulator's clients and naming helpers."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError

from local.emulator.launcher import ACCESS_KEY

Created = tuple[str, dict[str, Any]]
"""A created resource: its provider id and its outputs."""
Creator = Callable[["Emulated", str, dict[str, Any]], Created]

CREATORS: Final[dict[str, Creator]] = {}
"""Pulumi resource type token -> the function that creates it in the emulator."""

logger = logging.getLogger("local.deploy")


class UnsupportedResource(NotImplementedError):
    """The program declares a resource type, or a setting of one, the local deployer cannot create."""


def creates(token: str) -> Callable[[Creator], Creator]:
    """Register a creator for one resource type token (``aws:iot/policy:Policy``)."""

    def register(creator: Creator) -> Creator:
        CREATORS[token] = creator
        return creator

    return register


@dataclass
class Emulated:
    """The emulator as the creators see it: boto3 clients on its endpoint, with its root credentials."""

    endpoint_url: str
    region: str
    notes: list[str] = field(default_factory=list)
    """What was not emulated faithfully, one line each, for the deploy report."""
    function_environment_overrides: dict[str, str] = field(default_factory=dict)
    """Function environment values the emulator cannot serve, and what to use instead."""
    registry_endpoint: str | None = None
    """Where the functions reach a fleet's registry held by another emulator instance (a global fleet's
    other region); ``None``: the registry is in this emulator."""
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _account_id: str = ""

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` on the emulator (created once; safe to share between threads)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = boto3.session.Session().client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    aws_access_key_id=ACCESS_KEY,
                    aws_secret_access_key=ACCESS_KEY,
                )
            return self._clients[service]

    @property
    def account_id(self) -> str:
        """The emulator's account id."""
        if not self._account_id:
            self._account_id = str(self.client("sts").get_caller_identity()["Account"])
        return self._account_id

    def note(self, message: str) -> None:
        """Record (and log) a place where the emulator differs from AWS."""
        logger.info("note: %s", message)
        self.notes.append(message)


def unless_unimplemented(emulated: Emulated, what: str, call: Callable[[], object]) -> None:
    """Make an API call; if the emulator does not implement the API, note that ``what`` was skipped.

    Only for settings nothing in the local flow depends on (logging levels, for example)."""
    try:
        call()
    except ClientError as error:
        if "Unsupported" not in str(error):
            raise
        emulated.note(
            f"{what} skipped: the emulator does not implement it ({error.response['Error']['Message']})"
        )


def auto_name(name: str, inputs: dict[str, Any], key: str = "name") -> str:
    """``inputs[key]``, or Pulumi's auto-name for the resource: its name and 7 random hex digits."""
    return str(inputs.get(key) or f"{name}-{secrets.token_hex(4)[:7]}")


def tag_list(inputs: dict[str, Any], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """The resource's ``tags`` as the ``[{Key, Value}]`` list most AWS APIs take."""
    return [{key: k, value: v} for k, v in (inputs.get("tags") or {}).items()]


def number(inputs: dict[str, Any], key: str) -> int | None:
    """An integer input (the mock engine passes numbers as floats), or ``None`` when unset."""
    value = inputs.get(key)
    return None if value is None else int(value)
