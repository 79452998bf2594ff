"""Start localstripe (a fake Stripe server from PyPI) on loopback, in memory only.

localstripe itself listens on every interface and pickles its whole store to
/tmp/localstripe.pickle after each write, which is slow and shared between instances. This
launcher binds 127.0.0.1 and keeps the store in memory, so each test run, demo and benchmark has
its own clean Stripe, and indexes the store by object type (see index_store_by_type).

With ``--checkout`` (the demo), it also answers Stripe Checkout Sessions and shows a stand-in
hosted payment page (see localstripe_checkout.py), and answers Disputes and Files (see
localstripe_disputes.py).

Usage: python3 tools/run_localstripe.py PORT [--checkout]
"""

import logging
import sys
from collections import defaultdict

from aiohttp import web
from localstripe import resources, server


def index_store_by_type():
    """localstripe lists objects of a type (every refund of the account, to show a charge's
    refunds) by scanning its whole store: each answer slows down as the store grows, which
    Stripe's do not. Keep the store indexed by object type so that a listing reads only its
    own type."""
    by_type = defaultdict(dict)

    def setitem(self, key, value):
        dict.__setitem__(self, key, value)
        by_type[key.split(":", 1)[0]][key] = value

    def delitem(self, key):
        dict.__delitem__(self, key)
        by_type[key.split(":", 1)[0]].pop(key, None)

    def api_list_all(cls, url, limit=None, starting_after=None, **kwargs):
        if kwargs:
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listing = resources.List(url, limit=limit, starting_after=starting_after)
        listing._list = list(by_type[cls.object].values())
        return listing

    resources.Store.__setitem__ = setitem
    resources.Store.__delitem__ = delitem
    resources.StripeObject._api_list_all = classmethod(api_list_all)


def refunds_by_creation():
    """Stripe lists refunds created in a window (``created[gt]``, the drift check's listing);
    localstripe refuses the parameter. Filter its listing as Stripe does."""
    listing_of = resources.Refund._api_list_all.__func__

    def api_list_all(cls, url, created=None, **kwargs):
        listing = listing_of(cls, url, **kwargs)
        if isinstance(created, dict):
            for op, value in created.items():
                bound = int(value)
                keep = {
                    "gt": lambda c, b=bound: c > b,
                    "gte": lambda c, b=bound: c >= b,
                    "lt": lambda c, b=bound: c < b,
                    "lte": lambda c, b=bound: c <= b,
                }[op]
                listing._list = [refund for refund in listing._list if keep(refund.created)]
        return listing

    resources.Refund._api_list_all = classmethod(api_list_all)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8420
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    index_store_by_type()
    refunds_by_creation()
    logging.basicConfig(level=logging.WARNING)
    if "--checkout" in sys.argv[2:]:
        import localstripe_checkout

        localstripe_checkout.install(server.app)

        import localstripe_disputes

        localstripe_disputes.install(server.app)
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
