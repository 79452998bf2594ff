#!/usr/bin/env python3
"""Start Odoo's command line (as Odoo's own `odoo-bin` does) with the Odoo that python3 imports.

A file, not `python3 -m odoo`: Odoo's multi-worker server re-executes its own script for the
long-polling worker, which `-m` cannot provide.
"""

import odoo

if __name__ == "__main__":
    odoo.cli.main()
