def test_health_is_json(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_route_and_task_are_json_404(client):
    for path in ("/nope", "/models/nope"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.is_json and "error" in response.get_json()
    response = client.post("/predict/nope", json=[])
    assert response.status_code == 404 and response.get_json()["error"].startswith("unknown task")


def test_wrong_method_is_json_405(client):
    response = client.get("/predict/anything")
    assert response.status_code == 405 and response.is_json
