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


def test_start_up_takes_what_it_built_out_of_the_collectors_sight(
    settings: Settings, clean_db: Engine
) -> None:
    """A full collection in a web process walked the ~450,000 objects start-up builds (the
    matcher, gazetteer, catalogue): 150–180 ms with every request stopped. They are frozen."""
    import gc

    from routing.classify import get_matcher

    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0
        # What start-up built is among the frozen: a full collection no longer walks it.
        assert gc.is_tracked(get_matcher())
        assert not any(found is get_matcher() for found in gc.get_objects(generation=2))
