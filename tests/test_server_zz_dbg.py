import json, pytest
pytest_plugins = ["pytest_jupyter.jupyter_server"]
@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"dlw_magic": True}}}
async def test_x(jp_fetch, jp_serverapp):
    print("EXT", jp_serverapp.extension_manager.extensions.keys())
    r = await jp_fetch("api", "status", request_timeout=5)
    print(r.body)
    r = await jp_fetch("dlw/api/gpus", request_timeout=5)
    print(r.body)
