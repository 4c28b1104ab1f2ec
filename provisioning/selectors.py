"""Reads of the directory cache, always through the manager's scope (DESIGN.md §5)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from portal.models import User
from provisioning.models import AdministrativeUnit, DirectoryUser
from provisioning.roles import MANAGER_ROLE_TEMPLATES


def administrative_unit_list_for_manager(*, user: User) -> QuerySet[AdministrativeUnit]:
    """The stores where `user` holds an AU-scoped authentication admin role."""
    if not user.entra_object_id:
        return AdministrativeUnit.objects.none()
    return AdministrativeUnit.objects.filter(
        scoped_roles__principal_id=user.entra_object_id,
        scoped_roles__role_template_id__in=MANAGER_ROLE_TEMPLATES,
    ).distinct()


def get_administrative_unit_for_manager(*, user: User, au_id: str) -> AdministrativeUnit:
    """The store `au_id` if `user` manages it; otherwise 404, exactly as if it did not exist."""
    unit = (
        administrative_unit_list_for_manager(user=user)
        .filter(id=au_id)
        .first()
    )
    if unit is None:
        raise Http404("No such store.")
    return unit


def worker_list_for_administrative_unit(*, unit: AdministrativeUnit) -> QuerySet[DirectoryUser]:
    return DirectoryUser.objects.filter(memberships__administrative_unit=unit).order_by(
        "display_name", "id"
    )
