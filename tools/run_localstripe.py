"""Start localstripe (a fake Stripe server from PyPI) on loopback, in memory only.

localstripe itself listens on every interface and pickles its whole store to
/tmp/localstripe.pickle after each write, which is slow and shared between instances. This
launcher binds 127.0.0.1 and keeps the store in memory, so each test run, demo and benchmark has
its own clean Stripe.

With ``--checkout`` (the demo), it also answers Stripe Checkout Sessions and shows a stand-in
hosted payment page (see localstripe_checkout.py).

Usage: python3 tools/run_localstripe.py PORT [--checkout]
"""

import logging
import sys

from aiohttp import web
from localstripe import resources, server


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8420
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    logging.basicConfig(level=logging.WARNING)
    if "--checkout" in sys.argv[2:]:
        import localstripe_checkout

        localstripe_checkout.install(server.app)
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
