"""Signing in outside dev mode, as the Compose topology and a real deployment do: the app's
backend mints a user token and sets it as the `logs_gateway_token` cookie (HttpOnly,
SameSite=Lax) for the gateway's host; the page then streams, pages history and lists
channels with it. /dev/login does not exist there."""

from __future__ import annotations

from playwright.async_api import BrowserContext, expect

from gateway.api.http.auth import COOKIE
from tests.browser.conftest import ETL, WORKSPACE, connect, publish
from tests.conftest import running_gateway


async def test_a_cookie_minted_by_the_apps_backend_signs_the_page_in(
    context: BrowserContext,
) -> None:
    async with running_gateway(dev=False) as gw:
        page = await context.new_page()
        missing = await page.goto(f"{gw.http}/dev/login?user=alice&workspace={WORKSPACE}")
        assert missing is not None and missing.status == 404
        # What the backend does at its own sign-in (`logs-gateway token user`, or its IdP).
        token = gw.token("alice", subscribe=[f"logs:*:{WORKSPACE}", f"logs:*:{WORKSPACE}:>"])
        await context.add_cookies(
            [
                {
                    "name": COOKIE,
                    "value": token,
                    "url": gw.http,
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
            ]
        )
        await publish(gw, ETL, "before the page opened")
        await page.goto(f"{gw.http}/?workspace={WORKSPACE}")
        await expect(page.locator("#picker option").nth(1)).to_have_text(f"{ETL} (1)")
        await connect(page)
        await publish(gw, ETL, "signed in by cookie")
        await page.get_by_text("signed in by cookie").wait_for()
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: scripts never see it
