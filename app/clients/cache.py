"""What the client portal reads on nearly every request, remembered per client for a few seconds.

Every service that changes a client's summary (name, e-mail, stage, verification, messages)
calls `await summaries.forget(client_id)` inside its transaction.
"""

from typing import Any

from app.core.cache import SharedCache

summaries: SharedCache[dict[str, Any]] = SharedCache("client_summary", ttl=5.0)
