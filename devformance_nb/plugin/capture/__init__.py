"""SQL capture inside a pytest child (plugin layer: stdlib and pytest only at import).

Every SQL statement the code under test runs becomes one ``Query`` event on the child's
events writer. Database libraries are hooked by adapters (``sqlite3``, SQLAlchemy), each
installed only once its library is imported; none of them is a requirement.

Use from the plugin::

    capture = start_capture(writer, context, options)
    ...
    capture.stop()
"""

from __future__ import annotations

from devformance_nb.plugin.capture.session import Capture, start_capture

__all__ = ["Capture", "start_capture"]
