"""What every clinician page shares: who may open it, and how domain errors become pages.

Pages are for doctors and hospital admins; an integration client's login is for the API only.
A session signed in with the password alone does not open a page when the account has a
confirmed authenticator (or is an admin's): it is sent to the code step (medai_site.two_factor).
A service's ``NotFound`` (which is also what an object outside the viewer's care team raises)
becomes the 404 page, ``Forbidden`` the 403 page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse

from .errors import Forbidden, NotFound
from .roles import has_clinical_role, is_admin, is_doctor, may_train_models
from .two_factor import second_factor_missing

View = Callable[..., HttpResponse]


def may_use_pages(user: object) -> bool:
    """The clinical-role rule every access decision starts from (medai_site.roles), minus
    integration-client accounts, whose login is for the API only."""
    return has_clinical_role(user) and (is_doctor(user) or is_admin(user))


def may_view_models(user: object) -> bool:
    """Model reports are open to every doctor (a suggestion's evidence) and to admins."""
    return may_use_pages(user)


__all__ = ["may_train_models"]  # re-exported: the one rule lives in medai_site.roles


def page(view: View | None = None, *, allowed: Callable[[object], bool] = may_use_pages) -> Any:
    """Decorator for page views: signed in (second factor included), allowed, domain errors as
    403/404 pages."""

    def decorate(func: View) -> View:
        @wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if second_factor_missing(request.user):
                # Password only, but this account has (or as an admin must have) an
                # authenticator: nothing until the code step is done.
                return redirect_to_login(request.get_full_path(), login_url=reverse("login_verify"))
            if not allowed(request.user):
                raise PermissionDenied
            try:
                return func(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from None
            except Forbidden:
                raise PermissionDenied from None

        return wrapper

    return decorate(view) if view is not None else decorate


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"
