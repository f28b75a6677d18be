"""Login with email + password for a short-lived access token."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pixelforge.web.deps import ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class LoginIn(BaseModel):
    email: str = Field(examples=["ada@example.com"])
    password: str = Field(examples=["correct horse battery staple"])


class TokenOut(BaseModel):
    access_token: str = Field(examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOi..."])
    token_type: str = Field("bearer", examples=["bearer"])
    expires_in: int = Field(description="seconds", examples=[3600])


@router.post("/login", response_model=TokenOut, summary="Exchange email + password for a token")
@answers(401)
def login(body: LoginIn, services: ServicesDep) -> TokenOut:
    token = services.accounts.login(email=body.email, password=body.password)
    return TokenOut(access_token=token, expires_in=services.settings.access_token_ttl_s)
