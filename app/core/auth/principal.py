from __future__ import annotations

from dataclasses import dataclass

from app.core.audit import Actor


@dataclass(frozen=True)
class Principal:
    """The signed-in person as every guard, service and template sees them."""

    kind: str  # staff | client
    id: int
    email: str
    name: str
    session_id: int
    mfa_passed: bool
    totp_enabled: bool
    roles: frozenset[str] = frozenset()
    partner_id: int | None = None
    email_verified: bool = True

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def is_client(self) -> bool:
        return self.kind == "client"

    @property
    def is_partner(self) -> bool:
        return self.kind == "client" and self.partner_id is not None

    @property
    def roles_label(self) -> str:
        return ", ".join(sorted(self.roles))

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    def actor(self, ip: str | None = None, user_agent: str | None = None) -> Actor:
        return Actor(kind=self.kind, id=str(self.id), label=self.email, ip=ip, user_agent=user_agent)

    def topics(self) -> set[str]:
        """Live-channel topics this person may receive wherever they are.

        A page's own topic (the staff client page's `staff:client:{id}`) is added per socket by
        `app.core.live_socket.watched_topics`, only after the owning domain has checked access."""
        topics = {f"session:{self.session_id}"}
        if self.is_staff:
            topics |= {"staff:all", f"staff:user:{self.id}"} | {f"staff:role:{r}" for r in self.roles}
        else:
            topics.add(f"client:{self.id}")
            if self.partner_id is not None:
                topics.add(f"ib:{self.partner_id}")
        return topics
