from __future__ import annotations

from anyio import to_thread
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hotline.app import create_app
from hotline.settings import Settings


def _pool_size(client: TestClient) -> int:
    async def read() -> int:
        return int(to_thread.current_default_thread_limiter().total_tokens)

    assert client.portal is not None
    return client.portal.call(read)


def test_the_web_thread_pool_has_the_configured_size(settings: Settings, clean_db: Engine) -> None:
    for threads in (1, 3):
        app = create_app(settings.model_copy(update={"web_threads": threads}))
        with TestClient(app) as client:
            assert _pool_size(client) == threads
            assert client.get("/healthz").status_code == 200
