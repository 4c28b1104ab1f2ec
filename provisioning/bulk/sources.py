"""Other sources than a CSV: every (transitive) member of a group, or every member of a store.

Members are read live from Graph with the app identity (paging followed to the end), so the rows
carry the same facts as a CSV row resolved by `people_lookup`, and go through the same checks.
"""

from __future__ import annotations

from provisioning.bulk.preview import Person, RowInput
from provisioning.graph import GraphClient, GraphNotFound, get_app_client, operations


class SourceProblem(ValueError):
    """The group or store cannot be used; the message says why."""


def _rows(users) -> tuple[list[RowInput], dict[str, Person]]:
    inputs: list[RowInput] = []
    people: dict[str, Person] = {}
    seen: set[str] = set()
    for user in users:
        if user.id in seen or not user.user_principal_name:
            continue  # transitive listings may repeat a user reached through two groups
        seen.add(user.id)
        upn = user.user_principal_name
        inputs.append(RowInput(line=len(inputs) + 1, upn=upn, values={"userPrincipalName": upn}))
        people[upn.lower()] = Person.from_graph(user)
    return inputs, people


def group_members(
    *, group_id: str, client: GraphClient | None = None
) -> tuple[str, list[RowInput], dict[str, Person]]:
    """(group name, rows, people) for every user in the group, nested groups included."""
    client = client or get_app_client()
    try:
        group = operations.group_get(client, group_id.strip())
    except GraphNotFound as exc:
        raise SourceProblem("No group with this object id in Entra ID.") from exc
    inputs, people = _rows(operations.group_transitive_users(client, group.id))
    if not inputs:
        raise SourceProblem(f"The group {group.display_name} has no users.")
    return group.display_name or group.id, inputs, people


def store_members(
    *, au_id: str, client: GraphClient | None = None
) -> tuple[str, list[RowInput], dict[str, Person]]:
    """(store name, rows, people) for every user of an administrative unit."""
    client = client or get_app_client()
    try:
        unit = operations.administrative_unit_get(client, au_id)
    except GraphNotFound as exc:
        raise SourceProblem("No such store (administrative unit) in Entra ID.") from exc
    inputs, people = _rows(operations.administrative_unit_users(client, unit.id))
    if not inputs:
        raise SourceProblem(f"The store {unit.display_name} has no users.")
    return unit.display_name or unit.id, inputs, people
