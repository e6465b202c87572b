"""Alert delivery settings applied for real: a real Alertmanager behind TLS (its own
`--web.config.file`, a throwaway CA) and basic auth, `alert_relabel_configs` globally and per
Alertmanager set, target `relabel_configs`, and precise errors for bad settings."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from heron.exceptions import ConfigError
from heron.rules.notifier import parse_alert_relabel, parse_alertmanagers, relabel_alerts
from tests.alerting.peers import ALERTMANAGER, AlertmanagerProcess, have
from tests.rules.test_manager import config, evaluate, put, started

PASSWORD = "s3cret-am-password"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(d: Path) -> None:
    """ca.pem, and server.pem/server.key for the name alertmanager.test only, signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key, srv_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heron test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alertmanager.test")]))
           .issuer_name(ca_name).public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("alertmanager.test")]), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
           .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(_pem_key(srv_key))


class TLSAlertmanager(AlertmanagerProcess):
    """The real prometheus-alertmanager serving HTTPS with basic auth (exporter-toolkit web config)."""

    def __init__(self, pki: Path) -> None:
        super().__init__({"route": {"receiver": "null", "group_wait": "1h"}, "receivers": [{"name": "null"}]})
        self.pki = pki
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        (self.dir / "web.yml").write_text(yaml.safe_dump({
            "tls_server_config": {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "server.key")},
            "basic_auth_users": {"heron": hashed}}))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"https://127.0.0.1:{self.port}", verify=str(self.pki / "ca.pem"),
                            auth=("heron", PASSWORD), timeout=5)

    def __enter__(self) -> TLSAlertmanager:
        self._log = open(self.dir / "am.log", "wb")
        self.proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={self.dir / 'alertmanager.yml'}", f"--storage.path={self.dir}",
             f"--web.listen-address=127.0.0.1:{self.port}", f"--web.config.file={self.dir / 'web.yml'}",
             "--cluster.listen-address=", "--log.level=warn"], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        with self.client() as c:
            while time.time() < deadline:
                try:
                    if c.get("/-/ready", extensions={"sni_hostname": "alertmanager.test"}).status_code == 200:
                        return self
                except httpx.HTTPError:
                    time.sleep(0.1)
        raise RuntimeError("alertmanager did not start: " + (self.dir / "am.log").read_text())


@pytest.mark.peer
@pytest.mark.skipif(not have(ALERTMANAGER), reason="prometheus-alertmanager not installed")
async def test_tls_basic_auth_and_alert_relabeling_against_a_real_alertmanager(tmp_path: Path) -> None:
    make_pki(tmp_path)
    (tmp_path / "am-password").write_text(PASSWORD + "\n")
    with TLSAlertmanager(tmp_path) as am:
        target = {"targets": [f"127.0.0.1:{am.port}"]}
        alerting = {
            "alert_relabel_configs": [
                {"target_label": "region", "replacement": "eu-west"},
                {"source_labels": ["job"], "regex": "batch", "action": "drop"}],
            "alertmanagers": [
                {"scheme": "https", "timeout": "5s", "static_configs": [target],
                 "tls_config": {"ca_file": str(tmp_path / "ca.pem"), "server_name": "alertmanager.test"},
                 "basic_auth": {"username": "heron", "password_file": str(tmp_path / "am-password")},
                 "alert_relabel_configs": [{"action": "labeldrop", "regex": "severity"}]},
                # the system's trust store does not know the test CA: every send fails
                {"scheme": "https", "timeout": "5s", "static_configs": [target],
                 "basic_auth": {"username": "heron", "password": PASSWORD}},
                # the right CA but a wrong password: Alertmanager answers 401
                {"scheme": "https", "timeout": "5s", "static_configs": [target],
                 "tls_config": {"ca_file": str(tmp_path / "ca.pem"), "server_name": "alertmanager.test"},
                 "basic_auth": {"username": "heron", "password": "wrong"}},
                # the right CA, but without server_name the certificate does not name 127.0.0.1
                {"scheme": "https", "timeout": "5s", "static_configs": [target],
                 "tls_config": {"ca_file": str(tmp_path / "ca.pem")},
                 "basic_auth": {"username": "heron", "password": PASSWORD}},
                # a target dropped by relabel_configs gets nothing at all
                {"static_configs": [{"targets": ["127.0.0.1:1"]}],
                 "relabel_configs": [{"source_labels": ["__address__"], "regex": ".*:1", "action": "drop"}]},
            ]}
        heron = await started(config(tmp_path, alerting=alerting))
        own: list[dict[str, Any]] = []

        async def recorder(alerts: list[dict[str, Any]]) -> None:
            own.extend(alerts)

        heron.alert_receivers.append(recorder)
        try:
            notifier = heron.rules.notifier  # type: ignore[attr-defined]
            assert [t.url for t in notifier.targets] == [f"https://127.0.0.1:{am.port}/api/v2/alerts"] * 4
            t0 = int(time.time() * 1000) // 1000 * 1000 - 2_000
            await put(heron, t0 - 500, 0, job="api")
            await put(heron, t0 - 500, 0, job="batch")
            await evaluate(heron, t0, restore=True)
            with am.client() as c:
                got = c.get("/api/v2/alerts", extensions={"sni_hostname": "alertmanager.test"}).json()
            assert [a["labels"] for a in got] == [
                {"alertname": "JobDown", "job": "api", "cluster": "eu1", "region": "eu-west"}]
            # Heron's own alerting gets the globally relabeled alerts, not the set's own relabeling
            assert [a["labels"] for a in own] == [
                {"alertname": "JobDown", "job": "api", "severity": "page", "cluster": "eu1", "region": "eu-west"}]
            url = notifier.targets[0].url  # the four sets share it: one sent, three failed
            assert notifier.sent.labels(url)._value.get() == 1
            assert notifier.errors.labels(url)._value.get() == 3
        finally:
            await heron.stop()


def test_bad_settings_name_the_field() -> None:
    lines = {"alerting.alertmanagers.0.tls_config.ca_file": 7, "alerting.alertmanagers.0.tls_config.ca": 8,
             "alerting.alertmanagers.0.alert_relabel_configs.0.action": 9,
             "alerting.alert_relabel_configs.0.regex": 3}

    def parse(am: dict[str, Any]) -> ConfigError:
        with pytest.raises(ConfigError) as e:
            parse_alertmanagers({"alertmanagers": [{"static_configs": [{"targets": ["h:1"]}], **am}]},
                                lines.get, "heron.yml")
        return e.value

    e = parse({"tls_config": {"ca_file": "/nonexistent/ca.pem"}})
    assert (e.line, e.field) == (7, "alerting.alertmanagers.0.tls_config.ca_file") and "ca.pem" in str(e)
    e = parse({"tls_config": {"ca": "inline"}})
    assert (e.line, e.field) == (8, "alerting.alertmanagers.0.tls_config.ca")
    e = parse({"tls_config": {"min_version": "TLS14"}})
    assert e.field == "alerting.alertmanagers.0.tls_config.min_version" and "unknown TLS version: TLS14" in str(e)
    e = parse({"tls_config": {"min_version": "TLS13", "max_version": "TLS12"}})
    assert e.field == "alerting.alertmanagers.0.tls_config.max_version" and "lower than" in str(e)
    e = parse({"tls_config": {"cert_file": "c.pem"}})
    assert e.field == "alerting.alertmanagers.0.tls_config.key_file" and "both" in str(e)
    e = parse({"alert_relabel_configs": [{"action": "explode"}]})
    assert (e.line, e.field) == (9, "alerting.alertmanagers.0.alert_relabel_configs.0.action")
    e = parse({"basic_auth": {"username": "u", "password": "p"}, "authorization": {"credentials": "t"}})
    assert "at most one" in str(e)
    with pytest.raises(ConfigError) as err:
        parse_alert_relabel({"alert_relabel_configs": [{"regex": "("}]}, lines.get, "heron.yml")
    assert (err.value.line, err.value.field) == (3, "alerting.alert_relabel_configs.0.regex")


def test_relabel_alerts_keeps_the_rest_of_the_alert() -> None:
    rules = parse_alert_relabel({"alert_relabel_configs": [
        {"source_labels": ["severity"], "regex": "info", "action": "drop"},
        {"source_labels": ["team"], "target_label": "owner"}]})
    alerts: list[dict[str, Any]] = [{"labels": {"alertname": "A", "severity": "info"}, "annotations": {"x": "1"}},
              {"labels": {"alertname": "B", "team": "db"}, "annotations": {"y": "2"}, "endsAt": "e"}]
    assert relabel_alerts(rules, alerts) == [
        {"labels": {"alertname": "B", "team": "db", "owner": "db"}, "annotations": {"y": "2"}, "endsAt": "e"}]
    assert relabel_alerts([], alerts) is alerts


def test_check_config_validates_alerting_and_rule_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from heron.cli import main

    (tmp_path / "rules.yml").write_text("groups:\n- name: g\n  rules:\n  - record: x\n    expr: sum(\n")
    cfg = tmp_path / "heron.yml"
    cfg.write_text("rule_files: [rules.yml]\nalerting:\n  alertmanagers:\n  - scheme: https\n"
                   "    tls_config:\n      ca_file: missing-ca.pem\n"
                   "    static_configs: [{targets: ['am:9093']}]\n")
    assert main(["check", "config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "rules.yml: 5:11: group \"g\", rule 1, \"x\"" in err
    (tmp_path / "rules.yml").write_text("groups: []\n")
    assert main(["check", "config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}:6: alerting.alertmanagers.0.tls_config.ca_file: cannot read ca_file" in err
    assert str(tmp_path / "missing-ca.pem") in err  # relative to heron.yml
    make_pki(tmp_path)
    (tmp_path / "missing-ca.pem").write_bytes((tmp_path / "ca.pem").read_bytes())
    assert main(["check", "config", str(cfg)]) == 0
