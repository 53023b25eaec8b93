"""`ClientScope`: the one way to the client book for a signed-in person.

Every client, event and recommendation query of the app goes through a scope, so the rule lives
here and not in widgets: an associate reaches the clients whose home boutique is one of theirs;
a manager or an admin reaches every client. Asking for a client outside the scope raises
`OutOfScopeError` whatever asked (a picker, a URL parameter, a value left in session state).
What each role may open besides clients is `may(permission)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from seller.data.dataset import Dataset, UnknownIdError

# permission -> the lowest role that has it (roles rank associate < manager < admin)
PERMISSIONS = {"experiments": "manager", "audit": "manager", "model": "admin", "users": "admin"}
ROLE_RANK = {"associate": 0, "manager": 1, "admin": 2}
OUTREACH_COLUMNS = ["client_id", "tier", "home_boutique"]  # no names or contact details


class OutOfScopeError(LookupError):
    """A client the signed-in person may not see. The message carries ids only."""


def has_consent(value: Any) -> bool:
    """Marketing consent is opt-in: only a true value counts; missing (None, NaN, NA) means no."""
    return value is not None and not pd.isna(value) and bool(value)


@dataclass(frozen=True)
class ClientScope:
    dataset: Dataset
    username: str
    role: str
    boutiques: tuple[str, ...] = ()

    def __post_init__(self):
        if self.role not in ROLE_RANK:
            raise ValueError(f"ClientScope.role must be one of {', '.join(ROLE_RANK)}, got {self.role!r}")

    @classmethod
    def of(cls, dataset: Dataset, account) -> "ClientScope":
        """The scope of an account (anything with username, role and boutiques)."""
        return cls(dataset, account.username, account.role, tuple(account.boutiques))

    @property
    def sees_all(self) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK["manager"]

    def may(self, permission: str) -> bool:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r} (known: {', '.join(PERMISSIONS)})")
        return ROLE_RANK[self.role] >= ROLE_RANK[PERMISSIONS[permission]]

    @property
    def clients(self) -> pd.DataFrame:
        """The clients in scope, in the dataset's order."""
        clients = self.dataset.clients
        return clients if self.sees_all else clients[clients["home_boutique"].isin(self.boutiques)]

    def contains(self, client_id: str) -> bool:
        try:
            self.require(client_id)
        except LookupError:
            return False
        return True

    def require(self, client_id: str) -> str:
        """The client id when it is in scope; UnknownIdError / OutOfScopeError otherwise."""
        clients = self.dataset.clients
        row = clients[clients["client_id"] == client_id]
        if row.empty:
            raise UnknownIdError("client_id", str(client_id), self.dataset.name)
        if not self.sees_all and row["home_boutique"].iloc[0] not in self.boutiques:
            raise OutOfScopeError(f"client {client_id} is not a client of {self.username}'s boutiques "
                                  f"({', '.join(self.boutiques) or 'none'})")
        return client_id

    def client(self, client_id: str) -> pd.Series:
        """One client's row (indexed by column name)."""
        self.require(client_id)
        return self.dataset.clients.set_index("client_id").loc[client_id]

    def events(self, client_id: str) -> pd.DataFrame:
        """One client's events, oldest first."""
        return self.dataset.client_history(self.require(client_id))

    def outreach_clients(self) -> pd.DataFrame:
        """The clients in scope who consented to marketing: the only ones outreach may address,
        as ids (client, tier, home boutique)."""
        clients = self.clients
        return clients.loc[clients["consent_marketing"].map(has_consent), OUTREACH_COLUMNS].reset_index(drop=True)

    def guard(self, model) -> "ScopedModel":
        """The model with every per-client call checked against this scope first."""
        return ScopedModel(model, self)


class ScopedModel:
    """A recommender or explainer that answers only for clients in its scope. Other attributes
    (model_version, llm, ...) pass through unchanged."""

    def __init__(self, model, scope: ClientScope):
        self._model, self._scope = model, scope

    def recommend(self, client_id: str, *args, **kwargs):
        client_id = self._scope.require(client_id)  # before the model is even looked at
        return self._model.recommend(client_id, *args, **kwargs)

    def explain(self, client_id: str, *args, **kwargs):
        client_id = self._scope.require(client_id)  # before the model is even looked at
        return self._model.explain(client_id, *args, **kwargs)

    def explain_many(self, client_id: str, *args, **kwargs):
        client_id = self._scope.require(client_id)  # before the model is even looked at
        return self._model.explain_many(client_id, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._model, name)
