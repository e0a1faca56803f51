"""Who may read what: the principal a store acts for, and the one function that narrows every filter to it.

Every point carries `tenant` (keyword) and `groups` (keywords; empty = every user of the tenant). A principal
sees a point when `tenant = T AND (groups is empty OR groups ∩ G ≠ ∅)`. Points written before access fields
existed have neither field: they belong to tenant DEFAULT_TENANT and to all of its users (the migration
path: nothing to rewrite). The local owner (`OWNER`, the CLI without `--tenant`) sees every tenant.

`restrict` is applied where a filter reaches an engine (ingest/store/qdrant.py, edge.py: their `_flt`), so no
search, scroll, count, fetch or delete can skip it; a user's filter is AND-ed with it, never replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.schema import DEFAULT_TENANT, Access, AccessError, P
from ingest.store.filters import Condition, FilterSpec, all_of

ROLES = ("read", "write", "admin")


@dataclass(frozen=True)
class Principal:
    """Who a store acts for. `tenant` None is the local owner: every tenant, every group."""

    tenant: str | None
    groups: frozenset[str] = field(default_factory=frozenset)
    role: str = "read"
    every_group: bool = False  # the tenant's ingest runs: all of the tenant's points, whatever their groups

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise AccessError(f"role {self.role!r} is not one of {list(ROLES)}")
        if self.tenant is not None:
            Access(self.tenant, tuple(sorted(self.groups)))  # the same text rules as the stored fields

    @property
    def is_owner(self) -> bool:
        return self.tenant is None

    def may_write(self) -> bool:
        return self.role in ("write", "admin")

    def can_see(self, access: Access) -> bool:
        """Whether points with `access` are visible to this principal (the rule `access_spec` filters by)."""
        if self.tenant is None:
            return True
        if access.tenant != self.tenant:
            return False
        return self.every_group or not access.groups or bool(self.groups & set(access.groups))

    def may_store(self, access: Access) -> bool:
        """Whether this principal may write points with these access fields (its own tenant only)."""
        return self.is_owner or access.tenant == self.tenant


OWNER = Principal(None, frozenset(), "admin")


def ingest_principal(access: Access) -> Principal:
    """The principal an ingest of documents with `access` acts as: their tenant, every group of it (triage
    and stale deletes must see the tenant's own earlier versions, whatever groups those had)."""
    return Principal(access.tenant, frozenset(), "write", every_group=True)


def access_spec(principal: Principal) -> FilterSpec | None:
    """The points `principal` may see, as a filter (None: every point, for the owner)."""
    if principal.tenant is None:
        return None
    tenant: Condition | FilterSpec = Condition(P.TENANT, principal.tenant)
    if principal.tenant == DEFAULT_TENANT:  # points from before access fields existed are the default tenant's
        tenant = FilterSpec(should=(Condition(P.TENANT, DEFAULT_TENANT), Condition(P.TENANT, empty=True)))
    if principal.every_group:
        return FilterSpec(must=(tenant,))
    groups: tuple[Condition, ...] = (Condition(P.GROUPS, empty=True),)
    if principal.groups:
        groups += (Condition(P.GROUPS, sorted(principal.groups)),)
    return FilterSpec(must=(tenant, FilterSpec(should=groups)))


def restrict(spec: FilterSpec | None, principal: Principal) -> FilterSpec | None:
    """`spec` narrowed to what `principal` may see: the one place access is decided for every read and delete."""
    return all_of(spec, access_spec(principal))
