"""The chat page at / streams a reply in a real headless Chromium (Debian's package, via Playwright).

The screenshot is kept as a test artefact: runs/test-artifacts/serve-chat-page.png (or $AUGURY_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("AUGURY_TEST_ARTIFACTS",
                               Path(__file__).resolve().parents[2] / "runs" / "test-artifacts"))
CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant:{% endif %}")


@pytest.fixture
def hf_chat_model(tmp_path):
    from transformers import AutoTokenizer

    from augury.evals.tiny_model import make_random_llama

    path = make_random_llama(tmp_path / "hf", ["hello there, how are you today? fine thanks."] * 20, vocab_size=300)
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(path)
    return path


@pytest.fixture
def server(hf_chat_model, tmp_path, serving):
    from augury.serve.cli import build_app
    from augury.serve.config import ServeConfig

    cfg = ServeConfig(model=f"hf:{hf_chat_model}", log=str(tmp_path / "requests.db"))
    with serving(build_app(cfg)) as port:
        yield f"http://127.0.0.1:{port}/", cfg


def test_chat_reply_streams_into_the_page(hf_chat_model, server):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/setup.sh --test installs it from the distribution)")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, cfg = server
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url)
            page.fill("#prompt", "hello there")
            page.click("#send")
            page.wait_for_selector(".assistant[data-done='true']", timeout=30_000)
            reply = page.inner_text(".assistant")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "serve-chat-page.png"))
        finally:
            browser.close()
    assert reply.strip(), "the page showed no reply"
    from augury.serve.requestlog import RequestLog

    assert RequestLog(cfg.log).count() == 1  # the page's one request, streamed
