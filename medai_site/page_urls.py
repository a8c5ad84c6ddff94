"""The base's own pages: sign in/out, second factor, API tokens, the idle check, language.

Each app's pages are in its own ``urls`` module (patients.urls, visits.urls, predictions.urls),
composed by the root URLconf (medai_site.urls).
"""

from django.urls import include, path

from . import api_token_views, two_factor_views, views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/code/", two_factor_views.login_code_view, name="login_verify"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("account/two-factor/", two_factor_views.two_factor_view, name="two_factor"),
    path("account/api-tokens/", api_token_views.api_tokens_view, name="api_tokens"),
    path("session/", views.session_check, name="session_check"),
    path("i18n/", include("django.conf.urls.i18n")),
]
