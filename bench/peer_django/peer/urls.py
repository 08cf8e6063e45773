from django.urls import re_path
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from . import views

# Each path is served with and without its trailing slash, without a redirect, like handstamp.
urlpatterns = [
    re_path(r"^api/token/?$", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    re_path(r"^api/token/refresh/?$", TokenRefreshView.as_view(), name="token_refresh"),
    re_path(r"^api/token/verify/?$", TokenVerifyView.as_view(), name="token_verify"),
    re_path(r"^api/token/blacklist/?$", TokenBlacklistView.as_view(), name="token_blacklist"),
    re_path(r"^api/users/me/?$", views.MeView.as_view(), name="users_me"),
    re_path(r"^api/auth/check/?$", views.AuthCheckView.as_view(), name="auth_check"),
    re_path(r"^healthz/?$", views.HealthView.as_view(), name="healthz"),
    re_path(r"^readyz/?$", views.ReadyView.as_view(), name="readyz"),
]

handler404 = "peer.views.not_found"
handler500 = "peer.views.server_error"
