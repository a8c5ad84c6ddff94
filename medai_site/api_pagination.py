"""Cursor pagination for list endpoints (stable under inserts, no COUNT(*) over PHI tables)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response


class ApiCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "id"

    def get_page_size(self, request: Request) -> int:
        """A page_size that is not an integer in 1..max_page_size is a 400, not silently ignored."""
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        raw = values[-1]
        if len(values) > 1 or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"An integer from 1 to {self.max_page_size}."]}
            )
        return int(raw)


def paginated_response(
    *,
    queryset: QuerySet,
    serializer_class: type[serializers.Serializer],
    request: Request,
    view: Any,
    ordering: str = "id",
    audit_patients: bool = False,
) -> Response:
    """``audit_patients``: the rows are patients whose PHI the page shows; record a view of each."""
    paginator = ApiCursorPagination()
    paginator.ordering = ordering
    page = paginator.paginate_queryset(queryset, request, view=view)
    if audit_patients:
        from .audit import audit_record_many
        from .models import AuditEvent

        audit_record_many(
            actor=request.user,
            action=AuditEvent.Action.VIEW,
            patient_ids=[p.pk for p in page or []],
        )
    data = serializer_class(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)


def paginated(serializer_class: type[serializers.Serializer], name: str) -> type:
    """The response schema of a page: ``{"next", "previous", "results": [...]}``."""
    return type(
        f"{name}Serializer",
        (serializers.Serializer,),
        {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
            "Meta": type("Meta", (), {"ref_name": name}),
        },
    )


def page_parameters() -> list[Any]:
    from drf_spectacular.utils import OpenApiParameter

    return [
        OpenApiParameter(
            "cursor", str, OpenApiParameter.QUERY, description="Opaque cursor from next/previous."
        ),
        OpenApiParameter(
            "page_size",
            {"type": "integer", "minimum": 1, "maximum": ApiCursorPagination.max_page_size},
            OpenApiParameter.QUERY,
            description=f"Rows per page (default {ApiCursorPagination.page_size}, "
            f"at most {ApiCursorPagination.max_page_size}).",
        ),
    ]
