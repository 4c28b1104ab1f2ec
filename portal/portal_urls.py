from __future__ import annotations

from django.urls import path

from portal import auth_views, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("auth/sign-in", auth_views.sign_in, name="sign-in"),
    path("auth/callback", auth_views.callback, name="auth-callback"),
    path("auth/sign-out", auth_views.sign_out, name="sign-out"),
]
