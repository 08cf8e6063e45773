from django.db import connection
from django.http import JsonResponse
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication


class MeView(APIView):
    """GET /api/users/me/: JWTAuthentication (loads the user row), IsAuthenticated."""

    def get(self, request):
        return Response({"id": request.user.id, "username": request.user.username})


class AuthCheckView(APIView):
    """GET /api/auth/check: stateless, the token alone (no database read)."""

    authentication_classes = [JWTStatelessUserAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"user_id": str(request.user.id)})


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"status": "ok"})


class ReadyView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:
            return Response({"status": "unavailable"}, status=503)
        return Response({"status": "ok"})


_COMPACT = {"separators": (",", ":")}


def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404, json_dumps_params=_COMPACT)


def server_error(request):
    return JsonResponse({"detail": "A server error occurred."}, status=500, json_dumps_params=_COMPACT)
