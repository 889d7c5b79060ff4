"""Every path or verb no other route takes. Dapr treats these as service invocation attempts;
without an app id to invoke, the answer is 404 ERR_DIRECT_INVOKE."""

from __future__ import annotations

from fastapi import APIRouter

from app import errors

router = APIRouter()

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@router.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
async def unmatched(path: str) -> None:
    raise errors.no_app_id()
