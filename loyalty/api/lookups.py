"""The API's look-ups of what a request names in its body: the member it is for and the store it acts at.

One contract for every endpoint (docs/api.md, Errors): a member or store named in the body that does not
exist is 404 ``member_not_found`` / ``store_not_found``; a store-bound client naming another store is 403
``store_not_allowed``. Ids in the URL path are looked up by each view (404 ``not_found``), and a store as a
member's attribute (``home_store``) is a field error (400), since it is data, not what the request acts at.
"""

from loyalty.config import config_snapshot_last
from loyalty.exceptions import MemberNotFound, StoreNotAllowed, StoreNotFound
from loyalty.services.ledger import MemberRef
from members.models import Member, Store


def member_by_ref(ref: dict) -> Member:
    """The member of ``{"id"|"phone"|"member_number": …}`` (exactly one key, checked by the serializer)."""
    found = MemberRef(**ref).column_value()
    member = Member.objects.filter(**{found[0]: found[1]}).first() if found is not None else None
    if member is None:
        raise MemberNotFound()
    return member


def member_by_id(member_id: int) -> Member:
    member = Member.objects.filter(pk=member_id).first()
    if member is None:
        raise MemberNotFound()
    return member


def store_for(request, code: str | None, *, cached: bool = False) -> Store | None:
    """The active store the request acts at. No code: the client's bound store, or None for an unbound one.

    ``cached``: take it from the earn path's configuration cache when that has the code (no query) — only for
    a caller that checks the store again against the fresh configuration, as ``purchase_record`` does.
    """
    bound = request.auth.store if request.auth.store_id else None
    if code in (None, ""):
        return bound
    if bound is not None:
        if code != bound.code:
            raise StoreNotAllowed()
        if not bound.is_active:
            raise StoreNotFound()
        return bound
    config = config_snapshot_last() if cached else None
    store = config.stores_by_code.get(code) if config is not None else None
    if store is None:
        store = Store.objects.filter(code=code, is_active=True).first()
    if store is None:
        raise StoreNotFound()
    return store
