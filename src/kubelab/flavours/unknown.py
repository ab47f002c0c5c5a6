"""A cluster kubelab does not recognise, acted on only because its context was allowed by name."""

from __future__ import annotations

from kubelab.flavours.base import Flavour
from kubelab.flavours.network import HostNetworks


class Unknown(Flavour):
    def server_is_local(self, host: str, context: str, networks: HostNetworks) -> bool:
        return False  # no name makes it a training cluster: only an explicit allow does


FLAVOUR = Unknown(
    name="unknown",
    title="unrecognised (explicitly allowed) cluster",
    images_note="kubelab does not know how images reach its nodes",
)
