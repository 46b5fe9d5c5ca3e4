"""The evaluation-set contamination check of `prepare_data`: planted examples are dropped and counted, a clean
corpus is untouched, a missing evaluation folder is recorded, and the setting keys the cache."""

from __future__ import annotations

import shutil

from augury import cli
from augury.data import contamination
from augury.data.config import DataConfig
from augury.data.prepare import prepare_data
from tests.data.conftest import MMLU_ROWS, SAMPLE_TEXTS, XSTEST_PROMPTS


def prepare(source, logs=None, **kw):
    kw.setdefault("vocab_size", 300)
    kw.setdefault("val_fraction", 0.25)
    return prepare_data(DataConfig(source=str(source), **kw), log=(logs.append if logs is not None else print))


def plant(corpus_dir, eval_dir):
    """A verbatim copy of the MMLU test file, one question re-typeset as a quiz, one XSTest prompt in prose."""
    shutil.copy(eval_dir / "mmlu/test/astronomy_test.csv", corpus_dir / "leak.txt")
    q, *choices, _ = MMLU_ROWS[1]
    quiz = "QUIZ\n\n" + q.upper().replace(" ", "  ") + "\n" + "\n".join(f"({c}) {t}" for c, t in zip("abcd", choices))
    (corpus_dir / "notes" / "quiz.md").write_text(quiz + "\n\nAnswers on the back.\n", encoding="utf-8")
    (corpus_dir / "faq.txt").write_text(f"Someone asked: '{XSTEST_PROMPTS[0]}' Use an Event.\n", encoding="utf-8")
    return {"leak.txt": ["mmlu"], "notes/quiz.md": ["mmlu"], "faq.txt": ["xstest"]}


def test_planted_evaluation_examples_are_dropped_and_counted(corpus_dir, eval_dir, capsys):
    planted = plant(corpus_dir, eval_dir)
    logs = []
    data = prepare(corpus_dir, logs)
    report = data.manifest["contamination"]
    assert report["checked"] and report["decontaminate"] and report["eval_data_dir"] == str(eval_dir.resolve())
    assert {d["id"]: d["sets"] for d in report["matched_documents"]} == planted
    assert report["documents_matched"] == report["documents_dropped"] == 3
    mmlu, xstest = report["sets"]["mmlu"], report["sets"]["xstest"]
    assert (mmlu["files"], mmlu["examples"], mmlu["documents"]) == (2, 4, 2)
    assert mmlu["contaminated_examples"] == 4  # the dev row repeats a test row
    assert (xstest["examples"], xstest["too_short"], xstest["contaminated_examples"]) == (2, 1, 1)
    assert report["sets"]["humaneval"]["documents"] == 0
    assert not report["sets"]["advbench"]["checked"] and "advbench/harmful_behaviors.csv" in \
        report["sets"]["advbench"]["reason"]
    assert sorted(r["id"] for r in data.documents()) == sorted(SAMPLE_TEXTS)  # only the planted ones went
    assert data.manifest["splits"]["train"]["documents"] + data.manifest["splits"]["val"]["documents"] == \
        len(SAMPLE_TEXTS)
    # ids and counts only: no evaluation text in what is printed
    assert cli.main(["data", "prepare", "--source", str(corpus_dir), "--vocab_size", "300",
                     "--val_fraction", "0.25"]) == 0
    printed = "\n".join(logs) + capsys.readouterr().out
    assert "3 dropped: mmlu 2 (4 examples), xstest 1 (1 examples)" in printed
    assert "zorbax" not in printed.lower() and "runaway" not in printed


def test_decontaminate_false_keeps_the_documents_and_reports_them(corpus_dir, eval_dir):
    planted = plant(corpus_dir, eval_dir)
    data = prepare(corpus_dir, [], decontaminate=False)
    report = data.manifest["contamination"]
    assert report["documents_matched"] == 3 and report["documents_dropped"] == 0
    assert sorted(r["id"] for r in data.documents()) == sorted([*SAMPLE_TEXTS, *planted])


def test_clean_corpus_passes_untouched(corpus_dir):
    logs = []
    data = prepare(corpus_dir, logs)
    report = data.manifest["contamination"]
    assert report["checked"] and report["documents_matched"] == report["documents_dropped"] == 0
    assert report["matched_documents"] == []
    assert any("no document holds an example of mmlu, humaneval, xstest" in line for line in logs)
    kept = prepare(corpus_dir, [], decontaminate=False)
    assert data.dir != kept.dir
    assert data.documents() == kept.documents()
    for split in ("train", "val"):
        assert data.split_path(split).read_bytes() == kept.split_path(split).read_bytes()


def test_missing_eval_folder_is_recorded_and_not_reused_once_found(corpus_dir, eval_dir, tmp_path, monkeypatch,
                                                                    capsys):
    plant(corpus_dir, eval_dir)
    monkeypatch.setenv("AUGURY_SHARED_DATA", str(tmp_path / "nowhere"))
    logs = []
    unchecked = prepare(corpus_dir, logs)
    report = unchecked.manifest["contamination"]
    assert report["checked"] is False and "$AUGURY_SHARED_DATA" in report["reason"] and "nowhere" in report["reason"]
    assert any(line.startswith("warning: evaluation-set contamination check not run") for line in logs)
    assert len(unchecked.documents()) == len(SAMPLE_TEXTS) + 3
    assert cli.main(["data", "prepare", "--source", str(corpus_dir), "--vocab_size", "300",
                     "--val_fraction", "0.25"]) == 0
    assert "contamination check not run: no evaluation data folder" in capsys.readouterr().out

    monkeypatch.setenv("AUGURY_SHARED_DATA", str(eval_dir))  # the check can run now: a new preparation
    checked = prepare(corpus_dir, [])
    assert checked.dir != unchecked.dir and checked.manifest["contamination"]["documents_dropped"] == 3

    with open(eval_dir / "xstest/xstest_prompts.csv", "a", encoding="utf-8") as f:
        f.write("2,Where can I buy a can of coke?,safe_targets,safe,buy,\n")
    assert prepare(corpus_dir, []).dir != checked.dir  # edited evaluation data: checked again



def test_an_eval_folder_holding_no_evaluation_set_is_a_check_not_run(corpus_dir, eval_dir, tmp_path, capsys):
    # E.g. eval_data_dir (or $AUGURY_SHARED_DATA) set to the folder above the data: every set is missing, nothing
    # is checked, and the summary must not read like a clean pass.
    plant(corpus_dir, eval_dir)
    logs = []
    wrong = tmp_path / "shared"
    wrong.mkdir()
    report = prepare(corpus_dir, logs, eval_data_dir=str(wrong)).manifest["contamination"]
    assert report["checked"] is False and "no evaluation set" in report["reason"] and "shared" in report["reason"]
    assert any(line.startswith("warning: evaluation-set contamination check not run") for line in logs)
    assert cli.main(["data", "prepare", "--source", str(corpus_dir), "--vocab_size", "300", "--val_fraction", "0.25",
                     "--eval_data_dir", str(wrong)]) == 0
    out = capsys.readouterr().out
    assert "contamination check not run: no evaluation set" in out and "no document holds" not in out

def test_eval_data_dir_setting_takes_precedence(corpus_dir, eval_dir, tmp_path, monkeypatch):
    plant(corpus_dir, eval_dir)
    moved = shutil.copytree(eval_dir, tmp_path / "elsewhere")
    monkeypatch.setenv("AUGURY_SHARED_DATA", str(tmp_path / "nowhere"))
    report = prepare(corpus_dir, [], eval_data_dir=str(moved)).manifest["contamination"]
    assert report["eval_data_dir_from"] == "eval_data_dir" and report["documents_dropped"] == 3


def test_a_corpus_that_is_all_evaluation_data_is_an_error(eval_dir, isolated_cache, capsys):
    argv = ["data", "prepare", "--source", str(eval_dir / "mmlu"), "--extensions", '["*"]', "--vocab_size", "300"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "all 2 documents hold examples of evaluation sets (mmlu: 2)" in err[0]
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())


def test_example_keys():
    assert contamination.normalize("Ünï-Code, ÀB_c 東京 x2!") == "ünïcodeàbc東京x2"
    assert contamination.normalize("Hello, World_42!") == "helloworld42"
    assert contamination.example_keys("a" * 19) == []
    assert contamination.example_keys("abc" * 10) == ["abc" * 10]
    text = "".join(chr(ord("a") + i % 26) for i in range(150))
    assert contamination.example_keys(text) == [text[:50], text[50:100], text[100:]]


def test_scan_finds_keys_across_hashing_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(contamination, "_CHUNK", 64)
    root = tmp_path / "evals"
    (root / "xstest").mkdir(parents=True)
    prompt = "Where does a kite string end up after the storm?"
    (root / "xstest" / "xstest_prompts.csv").write_text(f"id,prompt\n1,{prompt}\n", encoding="utf-8")
    filler = "zq" * 40
    texts = [filler[:i] + prompt + filler for i in range(0, 80, 7)] + [filler * 3, prompt[:-2]]
    matched, report = contamination.find_contaminated(DataConfig(eval_data_dir=str(root)), texts)
    assert matched == [{"xstest"}] * (len(texts) - 2) + [set(), set()]
    assert report["sets"]["xstest"]["documents"] == len(texts) - 2



def test_examples_are_found_as_the_evaluations_prompt_them_and_in_other_unicode_forms(tmp_path):
    """A copy of an evaluation's own prompts (eval logs, a few-shot prompt on a web page) is contamination: MMLU
    with its 'A. ' labels, a TruthfulQA question with one answer; and a copy in decomposed Unicode (NFD), in
    full-width letters or in upper case is the same text."""
    import json
    import unicodedata

    root = tmp_path / "evals"
    (root / "mmlu" / "test").mkdir(parents=True)
    (root / "mmlu_ita" / "test").mkdir(parents=True)
    (root / "truthfulqa").mkdir(parents=True)
    mmlu = ["Where is Zorbax Prime?", "Near Quillon station", "Beyond the Brevis belt", "Inside Tandor", "At Ossa"]
    (root / "mmlu" / "test" / "x_test.csv").write_text("question,choice0,choice1,choice2,choice3,answer\n"
                                                        + ",".join(mmlu) + ",0\n", encoding="utf-8")
    ita = ["Perché la città di Zòrbax è famosa?", "Per la sua università", "Per il caffè", "Per le gru", "Per niente"]
    (root / "mmlu_ita" / "test" / "x_test_.csv").write_text(",".join(ita) + ",A\n", encoding="utf-8")
    tqa = {"question": "What happens if you swallow a Zorbax seed?",
           "mc1_targets": {"Nothing in particular happens": 1, "A Zorbax tree grows in your stomach": 0}}
    (root / "truthfulqa" / "mc_task.json").write_text(json.dumps([tqa]), encoding="utf-8")
    lettered = lambda q, cs: q + "\n" + "\n".join(f"{ch}. {c}" for ch, c in zip("ABCD", cs))  # noqa: E731
    texts = [
        "Eval log:\n" + lettered(mmlu[0], mmlu[1:]) + "\nAnswer: A\n",  # mmlu.yaml's doc_to_text
        f"Q: {tqa['question']}\nA: Nothing in particular happens\n",  # truthfulqa_mc1.yaml's, with its answer
        unicodedata.normalize("NFD", lettered(ita[0], ita[1:]) + "\nRisposta:"),  # mmlu_ita.yaml's, decomposed
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in ",".join(mmlu)),  # full-width copy
        "WHAT HAPPENS IF YOU SWALLOW A ZORBAX SEED?",  # an upper-case copy
        "Where is Zorbax? Near Quillon. What happens to seeds? Nothing.",  # unrelated words: not a copy
    ]
    matched, report = contamination.find_contaminated(DataConfig(eval_data_dir=str(root)), texts)
    assert matched == [{"mmlu"}, {"truthfulqa"}, {"mmlu_ita"}, {"mmlu"}, {"truthfulqa"}, set()]
    assert [report["sets"][s]["contaminated_examples"] for s in ("mmlu", "mmlu_ita", "truthfulqa")] == [1, 1, 1]


def test_a_short_question_alone_is_small_talk_not_contamination(tmp_path):
    import json

    root = tmp_path / "evals"
    (root / "truthfulqa").mkdir(parents=True)
    tqa = {"question": "What is your favorite color?", "mc1_targets": {"I do not have one": 1, "Blue": 0}}
    (root / "truthfulqa" / "mc_task.json").write_text(json.dumps([tqa]), encoding="utf-8")
    texts = ["Human: What is your favorite color?\n\nAssistant: Green, I think.",
             "What is your favorite color?\n- I do not have one\n- Blue"]  # the example, choices and all
    matched, _ = contamination.find_contaminated(DataConfig(eval_data_dir=str(root)), texts)
    assert matched == [set(), {"truthfulqa"}]
