"""fleetctl's text tables: what a device wrote reaches the operator's terminal as text only."""

from __future__ import annotations

import pytest

from fleetctl.output import print_table


def test_a_devices_escape_sequence_in_a_cell_never_reaches_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A job execution's statusDetails reason is the device's own text (`fleetctl rotate status`): OSC sets
    # the terminal's title, CSI its colours; C1's CSI (\x9b) starts one too.
    reason = "flash full\x1b]0;sudo rm\x07 \x1b[31mred\x9b2J"
    print_table("Not rotated", [("reason", "Reason")], [{"reason": reason}])

    shown = capsys.readouterr().out
    assert not any(character in shown for character in "\x1b\x07\x9b")
    assert "flash full?]0;sudo rm? ?[31mred?2J" in shown
