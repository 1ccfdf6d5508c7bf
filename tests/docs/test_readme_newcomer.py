"""The README's subscription guide says how to start the receiver it needs, before it is needed.

Why: the curl subscription sends notifications to a receiver on :9000, and
the command that starts one (``python -m ae_sdk listen --port 9000``) used
to appear 150 lines later, in the session section. The command itself is
run here too (on a free port), so the README cannot name one that fails.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.childenv import ROOT, checkout_first

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_receiver_command_comes_before_the_subscription_that_needs_it() -> None:
    section = README[README.index("### Subscriptions and notifications"):]
    nu = re.search(r'"nu": \["http://127\.0\.0\.1:(\d+)/', section)
    assert nu is not None
    start = section.find(f"python -m ae_sdk listen --port {nu.group(1)}")
    assert 0 <= start < nu.start(), "start the receiver before subscribing"
    # and the command runs (on a free port here)
    done = subprocess.run([sys.executable, "-m", "ae_sdk", "listen", "--port", "0", "--timeout", "0.5"],
                          capture_output=True, text=True, timeout=60, env=checkout_first())
    assert done.returncode == 0, done.stderr
    assert "LISTENING" in done.stdout + done.stderr
