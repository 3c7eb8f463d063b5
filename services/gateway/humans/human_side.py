"""Wires the human side into the gateway: people and two-factor REST, sign-in forms and the web UI proxy."""

from __future__ import annotations

from services.gateway.humans.people_api import PeopleApi
from services.gateway.humans.sign_in import SignIn
from services.gateway.humans.ui_proxy import UiProxy, shared_secret
from services.gateway.identity.accounts import Accounts
from services.gateway.identity.invitations import Invitations
from services.gateway.identity.secrets_at_rest import secret_box
from services.gateway.identity.totp import TwoFactor
from shared.runner import ServiceContext
from shared.settings import GatewaySettings


async def setup_human_side(ctx: ServiceContext, settings: GatewaySettings, accounts: Accounts) -> TwoFactor:
    """Add the routes humans use; returns the second-factor checker the decision endpoints need."""
    two_factor = TwoFactor(ctx.bus, ctx.pool, secret_box(settings))

    async def no_code_given(user_id: str) -> None:
        await two_factor.require(user_id, None)

    accounts.default_second_factor = no_code_given
    invitations = Invitations(ctx.bus, ctx.pool, accounts, settings.base_url, settings.invitation_ttl_seconds)
    secret = await shared_secret(ctx.bus)
    ctx.state["ui_proxy_secret"] = secret
    proxy = UiProxy(settings, ctx.bus, ctx.pool, invitations, secret)
    await proxy.start()
    ctx.shutdown_hooks.append(proxy.stop)
    ctx.app.router.add_routes(PeopleApi(accounts, invitations, two_factor).routes())
    ctx.app.router.add_routes(SignIn(settings, ctx.pool, accounts, invitations, two_factor).routes())
    ctx.app.router.add_routes(proxy.routes())
    return two_factor
