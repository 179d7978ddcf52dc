"""`alarmd notify preview` says which line of the alarm file is wrong, and why."""

from __future__ import annotations

import pytest

from alarmd.settings import Settings
from notifier.preview import PreviewError, preview
from tests.integration.sample import SAMPLE_PATH


def test_a_line_that_is_not_json_is_named_with_its_number(tmp_path):
    source = tmp_path / "alarms.jsonl"
    source.write_text('\n{"iactoken": "1"\n', encoding="utf-8")
    with pytest.raises(PreviewError, match=r"alarms.jsonl:2: not JSON"):
        preview(Settings(), source, tmp_path / "out.eml")


def test_a_line_missing_a_required_field_is_refused(tmp_path):
    source = tmp_path / "alarms.jsonl"
    source.write_text(
        '{"iactoken": "1", "alarmText": "BCF FAULTY"}\n', encoding="utf-8"
    )
    with pytest.raises(
        PreviewError, match=r":1: missing required field\(s\) eventTime"
    ):
        preview(Settings(), source, tmp_path / "out.eml")


def test_nothing_to_email_names_the_setting(tmp_path):
    source = tmp_path / "alarms.jsonl"
    source.write_text(SAMPLE_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings(email_alarm_types=["NO SUCH ALARM"])
    with pytest.raises(PreviewError, match="ALARMD_EMAIL_ALARM_TYPES"):
        preview(settings, source, tmp_path / "out.eml")
