"""``realtime-pubsub gateway`` and ``realtime-pubsub token``, run for real as subprocesses:
app keys from a JSON file in the service's shape, TLS, and tokens signed with private
keys."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import anyio
import jwt
import pytest
import trustme
from websockets.exceptions import InvalidStatus

from .keys import SECRET, ec_pair, rsa_pair
from .raw import connect, gateway_command

pytestmark = pytest.mark.anyio

COMMAND = [sys.executable, "-m", "realtime_pubsub"]
ISSUER = "https://idp.example.com"


async def token(*options: str) -> str:
    result = await run([*COMMAND, "token", *options])
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    result = await anyio.run_process(command, check=False)
    return subprocess.CompletedProcess(
        command, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


async def status_of(url: str) -> int:
    try:
        async with connect(url):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.fixture
def rs256_files(tmp_path: Path) -> tuple[Path, Path]:
    """An app config in the service's shape (RS256 authKey) and the matching private key."""
    config = tmp_path / "apps.json"
    config.write_text(
        json.dumps(
            {
                "appId": "rs-app",
                "authKey": {
                    "key": rsa_pair().public_pem,
                    "algorithms": ["RS256"],
                    "issuer": [ISSUER],
                },
                "adminKey": {"key": SECRET, "algorithms": ["HS256"], "issuer": []},
            }
        )
    )
    private_key = tmp_path / "private.pem"
    private_key.write_text(rsa_pair().private_pem)
    return config, private_key


async def test_an_rs256_app_from_a_json_file_accepts_rs256_and_refuses_hs256_and_issuers(
    rs256_files: tuple[Path, Path],
) -> None:
    config, private_key = rs256_files
    async with gateway_command("--app-config", str(config)) as (_, port, output):
        assert "serving apps: rs-app" in output
        base = f"ws://127.0.0.1:{port}/apps/rs-app?access_token="
        signed = ["--private-key", str(private_key), "--subject", "alice"]
        good = await token(*signed, "--algorithm", "RS256", "--issuer", ISSUER)
        assert jwt.get_unverified_header(good)["alg"] == "RS256"
        async with connect(base + good) as client:
            assert client.welcome["data"]["connection"]["appId"] == "rs-app"
        default = await token(*signed, "--issuer", ISSUER)
        assert jwt.get_unverified_header(default)["alg"] == "RS256"  # with --private-key
        refused = [
            await token("--secret", SECRET, "--issuer", ISSUER),
            await token(*signed, "--issuer", "https://evil.example.com"),
            await token(*signed),
        ]
        assert [await status_of(base + t) for t in refused] == [401, 401, 401]
        other_app = f"ws://127.0.0.1:{port}/apps/other?access_token={good}"
        assert await status_of(other_app) == 404


async def test_secret_and_app_config_together_are_bad_usage(
    rs256_files: tuple[Path, Path],
) -> None:
    result = await run(
        [*COMMAND, "gateway", "--secret", SECRET, "--app-config", str(rs256_files[0])]
    )
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


async def test_a_bad_app_config_fails_in_one_line_without_the_key(tmp_path: Path) -> None:
    config = tmp_path / "apps.json"
    config.write_text(
        json.dumps({"appId": "a", "authKey": {"key": rsa_pair().public_pem, "algorithms": []}})
    )
    result = await run([*COMMAND, "gateway", "--port", "0", "--app-config", str(config)])
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "authKey" in line and "at least one algorithm" in line
    assert "BEGIN" not in result.stderr + result.stdout


async def test_certfile_and_keyfile_serve_wss(tmp_path: Path) -> None:
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    certificate.private_key_pem.write_to_path(str(keyfile))
    options = ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    async with gateway_command(*options) as (_, port, output):
        assert f"connect to: wss://127.0.0.1:{port}/apps/" in output
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        url = f"wss://127.0.0.1:{port}/apps/demo?access_token={await token()}"
        async with connect(url, ssl=client_context) as client:
            assert client.welcome["data"]["connection"]["appId"] == "demo"


async def test_a_keyfile_needs_a_certfile(tmp_path: Path) -> None:
    result = await run([*COMMAND, "gateway", "--keyfile", str(tmp_path / "k.pem")])
    assert result.returncode == 2
    assert "--keyfile needs --certfile" in result.stderr


async def test_token_signs_with_an_ec_private_key(tmp_path: Path) -> None:
    key = tmp_path / "ec.pem"
    key.write_text(ec_pair().private_pem)
    signed = await token("--private-key", str(key), "--algorithm", "ES256", "--ttl", "60")
    claims = jwt.decode(signed, ec_pair().public_pem, algorithms=["ES256"])
    assert claims["permissions"] == ["realtime:publisher:write:topic:*"]


async def test_token_with_an_unsuitable_key_fails_in_one_line(tmp_path: Path) -> None:
    key = tmp_path / "ec.pem"
    key.write_text(ec_pair().private_pem)
    result = await run([*COMMAND, "token", "--private-key", str(key)])  # RS256
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "RS256 takes an RSA private key" in line
    assert "BEGIN" not in result.stderr
    both = await run([*COMMAND, "token", "--secret", SECRET, "--private-key", str(key)])
    assert both.returncode == 2
