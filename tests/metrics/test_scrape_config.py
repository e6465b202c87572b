"""scrape_configs validation: every message pinned with its file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from heron.cli import main
from heron.config import load_config
from heron.exceptions import ConfigError
from heron.metrics.limits import LimitsConfig
from heron.metrics.scrape_config import parse_scrape_configs, self_scrape_config

GOOD = """\
global:
  scrape_interval: 30s
scrape_configs:
  - job_name: api
    metrics_path: /m
    scheme: https
    params: {module: [http_2xx]}
    honor_labels: true
    honor_timestamps: false
    basic_auth: {username: u, password_file: pw.txt}
    tls_config: {insecure_skip_verify: true, ca_file: ca.pem}
    static_configs:
      - targets: ["a:9100", "b:9100"]
        labels: {env: prod}
    file_sd_configs:
      - files: [targets/*.json]
        refresh_interval: 1m
    relabel_configs:
      - {source_labels: [__address__], target_label: host, regex: "(.*):.*"}
    metric_relabel_configs:
      - {action: labeldrop, regex: tmp_.*}
    sample_limit: 1000
    label_limit: 30
"""

BAD = [
    ("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
     4, "scrape_configs.0.scrape_timeout", "scrape timeout greater than scrape interval"),
    ("scrape_configs:\n  - job_name: a\n  - job_name: a\n",
     3, "scrape_configs.1.job_name", "multiple scrape configs with job name 'a'"),
    ("scrape_configs:\n  - job_name: a\n    consul_sd_configs: []\n",
     3, "scrape_configs.0.consul_sd_configs", "service discovery is not supported"),
    ("scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
     3, "scrape_configs.0.scrape_intervall", "unknown field"),
    ("scrape_configs:\n  - metrics_path: /x\n", 2, "scrape_configs.0.job_name", "job_name is required"),
    ("scrape_configs:\n  - job_name: a\n    scrape_interval: 5 seconds\n",
     3, "scrape_configs.0.scrape_interval", "not a valid duration"),
    ("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", 3, "scrape_configs.0.scheme", "http or https"),
    ("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://x:1/metrics']\n",
     4, "scrape_configs.0.static_configs.0.targets.0", "not a valid host:port"),
    ("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: keep\n      - action: hashmod\n"
     "        target_label: x\n", 5, "scrape_configs.0.relabel_configs.1.modulus", "positive 'modulus'"),
    ("scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - regex: '('\n        target_label: x\n",
     4, "scrape_configs.0.metric_relabel_configs.0.regex", "invalid regex"),
    ("scrape_configs:\n  - job_name: a\n    bearer_token: x\n    authorization: {credentials: y}\n",
     3, "scrape_configs.0.bearer_token", "at most one of"),
    ("scrape_configs:\n  - job_name: a\n    sample_limit: -1\n", 3, "scrape_configs.0.sample_limit",
     "non-negative integer"),
    ("scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password_file: /nonexistent/pw}\n",
     3, "scrape_configs.0.basic_auth.password_file", "cannot read"),
    ("scrape_configs:\n  - job_name: a\n    scrape_protocols:\n      - OpenMetricsText1.0.0\n      - PrometheusProto\n",
     5, "scrape_configs.0.scrape_protocols.1", "PrometheusProto is not supported"),
    ("scrape_configs:\n  - job_name: a\n    scrape_protocols:\n      - OpenMetrics\n",
     4, "scrape_configs.0.scrape_protocols.0", "unknown scrape protocol 'OpenMetrics'"),
]


def test_scrape_protocols_make_prometheus_accept_header(tmp_path: Path) -> None:
    path = tmp_path / "heron.yml"
    path.write_text("scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]\n"
                    "  - job_name: b\n")
    a, b = parse_scrape_configs(load_config(path, environ={}))
    assert a.accept == ("text/plain;version=0.0.4;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,"
                        "*/*;q=0.4")
    assert b.accept == ("application/openmetrics-text;version=1.0.0;q=0.6,"
                        "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3")


def test_good_config(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("secret\n")
    path = tmp_path / "heron.yml"
    path.write_text(GOOD)
    [sc] = parse_scrape_configs(load_config(path, environ={}))
    assert sc.scrape_interval == 30 and sc.scrape_timeout == 10 and sc.scheme == "https"
    assert sc.basic_auth == ("u", "secret") and sc.honor_labels and not sc.honor_timestamps
    assert sc.static == ((("a:9100", "b:9100"), (("env", "prod"),)),)
    assert sc.file_sd[0].files == (str(tmp_path / "targets/*.json"),) and sc.file_sd[0].refresh_interval == 60
    assert sc.params == (("module", ("http_2xx",)),) and sc.sample_limit == 1000
    assert sc.tls.ca_file == str(tmp_path / "ca.pem")


@pytest.mark.parametrize("text, line, field, message", BAD)
def test_bad_configs_name_file_line_field(tmp_path: Path, text: str, line: int, field: str,
                                          message: str) -> None:
    path = tmp_path / "heron.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        parse_scrape_configs(load_config(path, environ={}))
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), line, field)
    assert message in err.reason


def test_check_config_and_prometheus_yml_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "heron.yml"
    bad.write_text(BAD[0][0])
    assert main(["check", "config", str(bad)]) == 1
    assert f"{bad}:4: scrape_configs.0.scrape_timeout:" in capsys.readouterr().err
    from heron.cli import _merge_prometheus

    prom = tmp_path / "prometheus.yml"
    prom.write_text("global: {scrape_interval: 15s}\nscrape_configs:\n  - job_name: x\n    scheme: gopher\n")
    with pytest.raises(ConfigError, match=rf"{prom}:4: scrape_configs.0.scheme:"):
        _merge_prometheus(load_config(None, environ={}), str(prom))


def test_limits_config(tmp_path: Path) -> None:
    path = tmp_path / "heron.yml"
    path.write_text("limits:\n  metrics:\n    max_series: 10\n    active_window: 10m\n")
    assert LimitsConfig.from_config(load_config(path, environ={})) == LimitsConfig(max_series=10,
                                                                                    active_window=600)
    path.write_text("limits:\n  metrics:\n    max_series: lots\n")
    with pytest.raises(ConfigError, match=r"heron.yml:3: limits.metrics.max_series: must be a non-negative"):
        LimitsConfig.from_config(load_config(path, environ={}))


def test_self_scrape_job() -> None:
    config = load_config(None, environ={})
    sc = self_scrape_config(config, "tok")
    assert sc.job_name == "heron" and sc.static == ((("127.0.0.1:9090",), ()),)
    assert sc.authorization == ("Bearer", "tok") and sc.scrape_interval == 15


def test_prometheus_yml_paths_are_relative_to_it(tmp_path: Path) -> None:
    from heron.cli import _merge_prometheus

    promdir = tmp_path / "prom"
    promdir.mkdir()
    (promdir / "token").write_text("t0k\n")
    prom = promdir / "prometheus.yml"
    prom.write_text("scrape_configs:\n  - job_name: x\n    bearer_token_file: token\n"
                    "    file_sd_configs: [{files: [sd/*.json]}]\n    tls_config: {ca_file: ca.pem}\n")
    heron_yml = tmp_path / "heron.yml"
    heron_yml.write_text("self_scrape: false\n")
    config = _merge_prometheus(load_config(heron_yml, environ={}), str(prom))
    [sc] = parse_scrape_configs(config)
    assert sc.authorization == ("Bearer", "t0k")
    assert sc.file_sd[0].files == (str(promdir.resolve() / "sd/*.json"),)
    assert sc.tls.ca_file == str(promdir.resolve() / "ca.pem")
