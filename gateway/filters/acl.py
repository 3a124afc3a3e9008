"""acl: only consumers in (or not in) some groups pass (Kong's plugin of that name).

Runs after the authentication filters (PRIORITY 950) on ``ex.consumer``. The
groups of each consumer (``acls``: group) come from a declarative file or from
GATEWAY_ACL_GROUPS / _FILE. No consumer identified: 401 ``Unauthorized``; a
consumer refused: 403 ``You cannot consume this service``; one let through
has its groups sent upstream as X-Consumer-Groups (a client's copy is always
removed first) unless ``hide_groups_header``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import ConfigError, Settings, boolean, names, setting
from gateway.filters import auth
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_safe_value

FORBIDDEN = "You cannot consume this service"
GROUPS_HEADER = "X-Consumer-Groups"


class GroupTable:
    """Consumer name -> its groups, in the order given (the header's order)."""

    def __init__(self) -> None:
        self.groups: dict[str, list[str]] = {}

    def add(self, consumer: str, group: str) -> None:
        auth.consumer_name(consumer)
        if not group or not is_safe_value(group):
            raise ValueError(f"a group of consumer {consumer!r} is empty or has control "
                             "characters")
        listed = self.groups.setdefault(consumer, [])
        if group in listed:
            raise ValueError(f"group {group!r} of consumer {consumer!r} is listed twice")
        listed.append(group)

    def update(self, other: GroupTable) -> None:
        for consumer, groups in other.groups.items():
            for group in groups:
                self.add(consumer, group)

    def __repr__(self) -> str:
        return f"<GroupTable of {len(self.groups)} consumers>"


def groups_from_env(raw: str) -> GroupTable:
    """``consumer:group,consumer:group``."""
    table = GroupTable()
    for item in names(raw):
        consumer, sep, group = item.partition(":")
        if not sep:
            raise ValueError("must be a comma-separated list of consumer:group")
        table.add(consumer.strip(), group.strip())
    return table


def groups_from_file(path: str) -> GroupTable:
    """A file of ``consumer group`` lines (# comments)."""
    table = GroupTable()
    for number, fields in auth.read_lines(path):
        if len(fields) != 2:
            raise ValueError(f"line {number}: expected `consumer group`")
        try:
            table.add(*fields)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return table


def group_names(raw: str) -> tuple[str, ...]:
    return names(raw)


@dataclass(frozen=True)
class AclConfig:
    groups: GroupTable | None = setting(
        "GATEWAY_ACL_GROUPS", groups_from_env, None,
        "acl: `consumer:group,...` the groups each consumer is in.")
    groups_file: GroupTable | None = setting(
        "GATEWAY_ACL_GROUPS_FILE", groups_from_file, None,
        "acl: file of `consumer group` lines (# comments).")
    allow: tuple[str, ...] | None = setting(
        "GATEWAY_ACL_ALLOW", group_names, None, "acl: groups allowed (one of allow or deny).")
    deny: tuple[str, ...] | None = setting(
        "GATEWAY_ACL_DENY", group_names, None, "acl: groups refused (one of allow or deny).")
    hide_groups_header: bool = setting(
        "GATEWAY_ACL_HIDE_GROUPS_HEADER", boolean, "false",
        "acl: do not send the consumer's groups upstream as X-Consumer-Groups.")

    def __post_init__(self) -> None:
        if bool(self.allow) == bool(self.deny):
            raise ConfigError("acl: exactly one of allow or deny must be set "
                              "(GATEWAY_ACL_ALLOW, GATEWAY_ACL_DENY)")


class Acl(Filter):
    """Lets a consumer through by its groups."""

    NAME = "acl"
    PRIORITY = 950  # Kong's
    VERSION = "1.0.0"
    Config = AclConfig

    def __init__(self, config: AclConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.table = GroupTable()
        try:
            for given in (config.groups, config.groups_file):
                if given is not None:
                    self.table.update(given)
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_ACL_GROUPS_FILE: {exc}") from None
        self.deny = bool(config.deny)
        self.listed = frozenset(config.deny or config.allow or ())
        # Per consumer: None if refused, else the X-Consumer-Groups value.
        self.verdicts = {consumer: self.verdict(groups)
                         for consumer, groups in self.table.groups.items()}

    def verdict(self, groups: list[str]) -> str | None:
        """The header value for a consumer with ``groups``, or None when it is refused."""
        if self.deny == (not self.listed.isdisjoint(groups)):
            return None
        return ", ".join(groups)

    def on_request(self, ex: Exchange) -> None:
        ex.upstream_headers.remove(GROUPS_HEADER)
        consumer = ex.consumer
        if consumer is None:
            self.refuse(ex, 401, "Unauthorized")
            return
        if consumer.username in self.verdicts:
            allowed = self.verdicts[consumer.username]
        elif self.deny:
            allowed = ""
        else:  # no groups and an allow list: Kong's 401 for anonymous, 403 otherwise
            self.refuse(ex, 401 if consumer.anonymous else 403,
                        "Unauthorized" if consumer.anonymous else FORBIDDEN)
            return
        if allowed is None:
            self.refuse(ex, 403, FORBIDDEN)
            return
        ex.outcomes[self.NAME] = "allowed"
        if not self.config.hide_groups_header:
            ex.upstream_headers[GROUPS_HEADER] = allowed

    def refuse(self, ex: Exchange, status: int, message: str) -> None:
        ex.outcomes[self.NAME] = "refused"
        ex.error(status, message)
