"""parse_config over random TOML-like documents and environment overrides."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.config import Config, parse_config
from agent.errors import AgentError
from tests.fuzz.strategies import FUZZ

_SECTIONS = ["agent", "company", "validation", "delivery", "backup_policy", "mail", "watch", "destination",
             "backup", "bogus"]
_KEYS = ["state_dir", "max_file_mb", "workers", "log_format", "tax_ids", "rules", "max_age_days", "path",
         "kind", "after", "settle_seconds", "name", "url", "token", "password", "tls_verify", "maintenance",
         "secret_access_key", "sse", "addressing_style", "timeout_s", "x"]
# No None: TOML has no null.
_SCALARS = st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["folder://out", "s3://", "s3://ab", "https://",
                                                            "http://h/x", "file:///", "email", "scanner",
                                                            "move", "json", "AES256", "../../etc"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3)), max_leaves=4)
_TABLE = st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=6)), _VALUES, max_size=4)
_DOC = st.dictionaries(st.one_of(st.sampled_from(_SECTIONS), st.text(max_size=6)),
                       st.one_of(_TABLE, st.lists(_TABLE, max_size=3), _SCALARS), max_size=5)
_ENV = st.dictionaries(
    st.builds(lambda parts: "FAPIAO_AGENT__" + "__".join(parts),
              st.lists(st.sampled_from([s.upper() for s in _SECTIONS + _KEYS] + ["", "A-B", "é"]),
                       min_size=0, max_size=4)),
    st.text(max_size=10), max_size=3)


@FUZZ
@given(_DOC, _ENV)
def test_parse_config_gives_a_config_or_a_config_error(raw, env):
    try:
        cfg = parse_config(raw, base_dir=Path("/srv/fapiao"), env=env)
    except AgentError as e:
        assert str(e).strip(), "a config error must say what is wrong"
        return
    assert isinstance(cfg, Config)
    assert all(w.path.is_absolute() for w in cfg.watches)
