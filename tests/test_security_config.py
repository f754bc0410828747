"""Advertise addresses, ``[tls]`` and ``[auth]`` settings, and their one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from raft3d import cli
from raft3d.config import Address, ConfigError, settings_from_mapping
from raft3d.security.certs import NodeSpec, make_demo_pki
from raft3d.security.settings import SecurityConfigError, TlsSettings
from raft3d.security.tls import check_files
from raft3d.security.tokens import hash_token

SECRET = "config-test-secret-0123456789"


def raw(**node: Any) -> dict[str, Any]:
    return {
        "node": {"id": "n1", "http": "127.0.0.1:8080", "raft": "127.0.0.1:9080", "data_dir": "d"}
        | node,
        "cluster": {
            "secret": SECRET,
            "members": [
                {"id": "n1", "http": "h1.lan:8080", "raft": "h1.lan:9080"},
                {"id": "n2", "http": "h2.lan:8080", "raft": "h2.lan:9080"},
            ],
        },
    }


def with_members_at_bind(data: dict[str, Any]) -> dict[str, Any]:
    data["cluster"]["members"][0] = {"id": "n1", "http": "127.0.0.1:8080", "raft": "127.0.0.1:9080"}
    return data


def test_advertise_defaults_to_the_bind_address() -> None:
    s = settings_from_mapping(with_members_at_bind(raw()))
    assert s.advertise_http is None and s.advertise_raft is None
    assert s.public_http == Address("127.0.0.1", 8080) == s.http
    assert s.public_raft == s.raft
    assert s.member("n1") is not None and s.member("n1").http_url == "http://127.0.0.1:8080"  # type: ignore[union-attr]


def test_advertised_addresses_are_what_members_are_told() -> None:
    s = settings_from_mapping(
        raw(
            http="0.0.0.0:8080",
            raft="0.0.0.0:9080",
            advertise_http="h1.lan:8080",
            advertise_raft="h1.lan:9080",
        )
    )
    assert s.http == Address("0.0.0.0", 8080)
    assert s.public_http == Address("h1.lan", 8080)
    assert s.public_raft == Address("h1.lan", 9080)


def test_a_wildcard_bind_needs_an_advertise_address() -> None:
    with pytest.raises(ConfigError, match=r"node.http binds to every interface .*advertise_http"):
        settings_from_mapping(raw(http="0.0.0.0:8080"))


def test_the_member_entry_must_match_what_the_node_advertises() -> None:
    with pytest.raises(
        ConfigError, match=r"'n1' has http = 'h1.lan:8080', but this node advertises 'h9:8080'"
    ):
        settings_from_mapping(
            raw(http="0.0.0.0:8080", advertise_http="h9:8080", advertise_raft="h1.lan:9080")
        )
    with pytest.raises(ConfigError, match=r"node\.advertise_raft: expected 'host:port'"):
        settings_from_mapping(raw(advertise_http="h1.lan:8080", advertise_raft="h1.lan"))


def test_https_members_and_tls_paths() -> None:
    data = with_members_at_bind(raw())
    data["tls"] = {"ca": "c/ca.pem", "cert": "c/n1.pem", "key": "c/n1-key.pem"}
    s = settings_from_mapping(data)
    assert s.tls == TlsSettings(Path("c/ca.pem"), Path("c/n1.pem"), Path("c/n1-key.pem"))
    assert [m.http_url for m in s.members] == ["https://127.0.0.1:8080", "https://h2.lan:8080"]
    data["tls"]["http"] = False
    s = settings_from_mapping(data)
    assert s.http_scheme == "http" and s.tls is not None and s.tls.peers
    data["tls"]["colour"] = "red"
    with pytest.raises(ConfigError, match=r"unknown setting tls\.colour"):
        settings_from_mapping(data)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"enabled": True}, "auth.enabled is true but auth.tokens is empty"),
        ({"tokens": [{"name": "a", "role": "root", "sha256": "0" * 64}]}, "role must be one of"),
        ({"tokens": [{"name": "a", "role": "admin", "sha256": "abc"}]}, "64 hex digits"),
        ({"tokens": [{"name": "a", "role": "admin"}]}, "64 hex digits"),
        ({"open": ["healthz"]}, "auth.open must be an array of some of '/healthz'"),
        ({"open": ["/api/v1/printers"]}, "auth.open must be an array of some of"),
        ({"open": "/metrics"}, "auth.open must be an array of some of"),
        ({"enabled": "yes"}, "auth.enabled must be true or false"),
        ({"token": []}, "unknown setting auth.token"),
    ],
)
def test_auth_errors(auth: dict[str, Any], message: str) -> None:
    data = with_members_at_bind(raw())
    data["auth"] = auth
    with pytest.raises(ConfigError, match=message):
        settings_from_mapping(data)


def test_auth_is_off_by_default_and_parsed_when_on() -> None:
    assert not settings_from_mapping(with_members_at_bind(raw())).auth.enabled
    data = with_members_at_bind(raw())
    digest = hash_token("t")
    data["auth"] = {"enabled": True, "tokens": [{"name": "a", "role": "viewer", "sha256": digest}]}
    auth = settings_from_mapping(data).auth
    assert auth.enabled and auth.open_paths == ("/healthz", "/readyz")
    assert [(t.name, t.role, t.sha256) for t in auth.tokens] == [("a", "viewer", digest)]


# --- certificate files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    make_demo_pki(out, [NodeSpec("n1", ("h1.lan",)), NodeSpec("n2", ("h2.lan",))])
    make_demo_pki(out / "other", [NodeSpec("n1", ("h1.lan",))])
    return out


def tls_files(pki: Path, **override: Path) -> TlsSettings:
    files = {"ca": pki / "ca.pem", "cert": pki / "n1.pem", "key": pki / "n1-key.pem"} | override
    return TlsSettings(files["ca"], files["cert"], files["key"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"cert": "missing.pem"}, r"tls.cert: no such file .*missing.pem"),
        ({"key": "."}, r"tls.key: cannot read .*: Is a directory"),
        ({"key": "n2-key.pem"}, r"tls.key: .*n2-key.pem does not match tls.cert .*n1.pem"),
        ({"cert": "n2.pem", "key": "n2-key.pem"}, r"is for 'n2', but this node is 'n1'"),
        ({"ca": "other/ca.pem"}, r"tls.cert: .*n1.pem is not signed by tls.ca .*other/ca.pem"),
        ({"ca": "n1-key.pem"}, r"tls.ca: .* holds no PEM certificate"),
        ({"cert": "n1-key.pem"}, r"tls.cert: .* is not a PEM certificate"),
        ({"key": "n1.pem"}, r"tls.key: .* is not an unencrypted PEM private key"),
    ],
)
def test_file_problems_are_named(pki: Path, override: dict[str, str], message: str) -> None:
    with pytest.raises(SecurityConfigError, match=message):
        check_files(tls_files(pki, **{k: pki / v for k, v in override.items()}), "n1")


def test_good_files_pass(pki: Path) -> None:
    check_files(tls_files(pki), "n1", "h1.lan")


def test_the_certificate_must_name_the_advertised_https_host(pki: Path) -> None:
    with pytest.raises(SecurityConfigError, match=r"does not name 'h2.lan', the host this node"):
        check_files(tls_files(pki), "n1", "h2.lan")
    # Without HTTPS nobody checks the name.
    files = tls_files(pki)
    check_files(TlsSettings(files.ca, files.cert, files.key, http=False), "n1", "h2.lan")


def test_serve_says_what_is_wrong_in_one_line_and_exits_2(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(pki / "n2-key.pem", tmp_path / "wrong-key.pem")
    conf = tmp_path / "n1.toml"
    conf.write_text(
        '[node]\nid = "n1"\nhttp = "127.0.0.1:8080"\nraft = "127.0.0.1:9080"\n'
        f'data_dir = "{tmp_path / "d"}"\n[cluster]\nsecret = "{SECRET}"\n'
        '[[cluster.members]]\nid = "n1"\nhttp = "127.0.0.1:8080"\nraft = "127.0.0.1:9080"\n'
        f'[tls]\nca = "{pki / "ca.pem"}"\ncert = "{pki / "n1.pem"}"\n'
        f'key = "{tmp_path / "wrong-key.pem"}"\n'
    )
    assert cli.main(["serve", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("raft3d: tls.key: ") and "does not match tls.cert" in err
    assert not (tmp_path / "d").exists()  # refused before anything was touched


# --- raft3d token / raft3d certs -----------------------------------------------------------


def test_token_command_prints_a_token_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    assert cli.main(["token", "--name", "ann", "--role", "operator"]) == 0
    out = capsys.readouterr().out
    token = out.splitlines()[0].removeprefix("token: ")
    entry = tomllib.loads(out[out.index("[[auth.tokens]]") :])["auth"]["tokens"][0]
    assert entry == {"name": "ann", "role": "operator", "sha256": hash_token(token)}
    assert cli.main(["token", "--name", "ann", "--role", "operator"]) == 0
    assert capsys.readouterr().out.splitlines()[0] != out.splitlines()[0]  # fresh each time


def test_certs_command_makes_a_working_demo_pki(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography import x509

    out = tmp_path / "certs"
    args = ["certs", "--out", str(out), "--node", "n1=h1.lan,10.0.0.1", "--node", "n2"]
    assert cli.main(args) == 0
    assert "wrote" in capsys.readouterr().out
    check_files(tls_files(out), "n1")
    check_files(TlsSettings(out / "ca.pem", out / "n2.pem", out / "n2-key.pem"), "n2")
    cert = x509.load_pem_x509_certificate((out / "n1.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["h1.lan"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    assert (out / "n1-key.pem").stat().st_mode & 0o077 == 0  # keys are private to the owner
    # A later run adds a node signed by the same CA.
    assert cli.main(["certs", "--out", str(out), "--node", "n3"]) == 0
    check_files(TlsSettings(out / "ca.pem", out / "n3.pem", out / "n3-key.pem"), "n3")
    check_files(tls_files(out), "n1")
