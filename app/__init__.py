"""fxcrm: the operational core of a forex brokerage."""

import os

# Piccolo looks its configuration up by module name; ours lives inside the package so that an
# installed `fxcrm` works from any directory.
os.environ.setdefault("PICCOLO_CONF", "app.piccolo_conf")
