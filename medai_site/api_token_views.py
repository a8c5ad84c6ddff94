"""Account → API tokens: a person creates and revokes their own tokens (and nobody else's).

Creating one needs the current password: a token outlives the session, so a borrowed browser
must not be able to mint one. The secret is shown once, on the answer to the creating POST,
which no cache keeps. Integration-client accounts get theirs from an admin (admin site).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from .api_auth import Scope, api_token_create, api_token_revoke
from .errors import Conflict, DomainError
from .forms import ApiTokenForm
from .models import ApiToken
from .pages import page
from .roles import may_train_models


def _scopes_for(user: object) -> list[tuple[str, str]]:
    """The scopes this person's role allows a token to carry."""
    return [
        (value, label)
        for value, label in Scope.choices
        if value != Scope.MODELS_MANAGE or may_train_models(user)
    ]


@page
@never_cache
@require_http_methods(["GET", "POST"])
def api_tokens_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    action = request.POST.get("action", "")
    form = ApiTokenForm(
        request.POST if action == "create" else None, request=request, scopes=_scopes_for(user)
    )
    secret = ""
    if request.method == "POST":
        if action == "revoke":
            token_id = request.POST.get("token", "").strip()
            if not token_id.isdigit():
                return HttpResponse(status=400)
            token = ApiToken.objects.filter(user_id=user.pk, pk=int(token_id)).first()
            if token is not None:  # someone else's token is simply not found
                try:
                    api_token_revoke(token=token, actor=user)
                    messages.success(request, _("Token revoked."))
                except Conflict:
                    pass
            return redirect("api_tokens")
        if action != "create":
            return HttpResponse(status=400)
        if form.is_valid():
            try:
                _token, secret = api_token_create(
                    user=user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    days=form.cleaned_data["days"],
                    actor=user,
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                form = ApiTokenForm(request=request, scopes=_scopes_for(user))
    tokens = ApiToken.objects.filter(user_id=user.pk).order_by("-created_at", "-id")
    return render(
        request,
        "registration/api_tokens.html",
        {"form": form, "tokens": tokens, "secret": secret},
        status=400 if form.errors else 200,
    )
