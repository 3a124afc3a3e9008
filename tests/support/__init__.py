"""Test helpers by concern: ``net`` (raw HTTP, ports), ``processes`` (gunicorn, httpbin,
Redis), ``fixture_server`` (the scripted upstream and third party), ``app`` (the gateway
in-process through the production ``create_app``)."""
