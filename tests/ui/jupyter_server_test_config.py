"""JupyterLab server for the browser tests (tests/ui/run.sh starts it).

Galata's test configuration (no token, no XSRF check: never use it for anything but
tests), on 127.0.0.1 and the port run.sh chose, with its own user-settings and workspaces
directories so the tests (which switch the theme) leave the user's JupyterLab untouched.
"""

import os
from tempfile import mkdtemp

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by Jupyter's loader

configure_jupyter_server(c)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ.get("CELLBOX_UI_PORT", "8888"))
c.ServerApp.allow_root = True  # the tests run as root (containers need it)
c.LabApp.user_settings_dir = mkdtemp(prefix="cellbox-ui-settings-")
c.LabApp.workspaces_dir = mkdtemp(prefix="cellbox-ui-workspaces-")
# Kernels get SIGTERM and time to stop their containers when the server stops.
c.KernelManager.shutdown_wait_time = 10.0
