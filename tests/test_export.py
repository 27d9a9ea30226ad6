"""`lemagen export` in every format, checked against each target's documented schema, and
`filter --decontaminate`. Inputs: the offline inject pipeline on real GSM8K rows, and the
online pipeline (sample --keep all -> correct) against the loopback server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lemagen.lema.formats import LEMA_COT_PROMPT
from lemagen.math.grading import Grader
from tests.conftest import DATA, EXAMPLES, endpoint, load_jsonl, records, run, write_jsonl
from tests.fake_openai import FakeOpenAI

GSM8K = str(EXAMPLES / "gsm8k.jsonl")


@pytest.fixture
def corrections(fake: FakeOpenAI, tmp_path: Path) -> Path:
    """`correct` output with correct samples passed through: 10 problems x 4 distinct samples
    (2 right, 2 wrong), so 2 corrections and 2 correct samples per problem."""
    fake.tag_samples = True
    sampled = run("sample", GSM8K, "-m", "r", "-n", "4", "--keep", "all", "--base-url",
                  fake.base_url, "-q")  # fmt: skip
    corrected = run("correct", "-m", "c", "--base-url", fake.base_url, "-q", input=sampled.stdout)
    assert corrected.exit_code == 0
    kinds = [("correction_id" in r, r["verdict"]) for r in records(corrected)]
    assert sorted(kinds) == [(False, "correct")] * 20 + [(True, "correct")] * 20
    path = tmp_path / "corrections.jsonl"
    path.write_text(corrected.stdout)
    return path


@pytest.fixture
def injected(tmp_path: Path) -> Path:
    result = run("inject", str(DATA / "gsm8k_train_slice.jsonl"), "--per-question", "2", "-q")
    assert result.exit_code == 0
    assert len(records(result)) > 60  # every one of them is kept by filter and export
    path = tmp_path / "injected.jsonl"
    path.write_text(result.stdout)
    return path


def export(path: Path, *args: str) -> list[dict[str, Any]]:
    result = run("export", str(path), *args)
    assert result.exit_code == 0, result.stderr
    return records(result)


def strings(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def test_lema_is_what_filter_writes(injected: Path) -> None:
    filtered = run("filter", str(injected), "-q")
    rows = export(injected, "-f", "lema")
    assert len(rows) == len(load_jsonl(injected))
    assert rows == records(filtered)


def test_alpaca_for_llama_factory(injected: Path) -> None:
    rows = export(injected, "-f", "alpaca")
    assert len(rows) == len(load_jsonl(injected)) > 60
    for row in rows:
        assert set(row) == {"instruction", "input", "output"}
        assert row["instruction"].endswith("\nIncorrect Step:")
        assert row["input"] == ""
        assert row["output"].startswith("Step ")  # the LEMA completion, without its lead space
        assert "\nExplanation: " in row["output"]


def test_sharegpt_for_llama_factory(injected: Path) -> None:
    rows = export(injected, "-f", "sharegpt")
    assert len(rows) == len(load_jsonl(injected))
    for row in rows:
        assert set(row) == {"conversations"}
        turns = row["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"]
        assert all(set(t) == {"from", "value"} and strings(t["value"]) for t in turns)


def test_dataset_info_entry_is_written_and_merged(injected: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = data / "dataset_info.json"
    data.mkdir()
    info.write_text(json.dumps({"existing": {"file_name": "x.json"}}))
    out = data / "lema_sg.jsonl"
    result = run("export", str(injected), "-f", "sharegpt", "-o", str(out),
                 "--dataset-info", str(info))  # fmt: skip
    assert result.exit_code == 0
    assert len(load_jsonl(out)) == len(load_jsonl(injected))
    entries = json.loads(info.read_text())
    assert entries["existing"] == {"file_name": "x.json"}
    entry = entries["lema_sg"]
    assert entry["formatting"] == "sharegpt"
    assert (info.parent / entry["file_name"]).resolve() == out.resolve()
    assert entry["columns"] == {"messages": "conversations"}
    assert entry["tags"]["user_tag"] == "human"
    assert entry["tags"]["assistant_tag"] == "gpt"
    result = run("export", str(injected), "-f", "alpaca", "-o", str(data / "a.jsonl"),
                 "--dataset-info", str(info), "--dataset-name", "lema_alpaca")  # fmt: skip
    assert result.exit_code == 0
    assert len(load_jsonl(data / "a.jsonl")) == len(load_jsonl(injected))
    alpaca = json.loads(info.read_text())["lema_alpaca"]
    assert alpaca["formatting"] == "alpaca"
    assert alpaca["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}
    assert set(json.loads(info.read_text())) == {"existing", "lema_sg", "lema_alpaca"}
    refused = run("export", str(injected), "-f", "alpaca", "--dataset-info", str(info))
    assert refused.exit_code == 2
    assert "--dataset-info needs -o" in refused.stderr


def test_openai_chat_format(injected: Path) -> None:
    rows = export(injected, "-f", "openai")
    assert len(rows) == len(load_jsonl(injected))
    for row in rows:
        assert set(row) == {"messages"}
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert all(set(m) == {"role", "content"} and strings(m["content"]) for m in row["messages"])


def test_trl_standard_and_conversational(injected: Path) -> None:
    standard = export(injected, "-f", "trl")
    assert len(standard) == len(load_jsonl(injected))
    assert all(set(r) == {"prompt", "completion"} for r in standard)
    chat = export(injected, "-f", "trl", "--chat")
    assert len(chat) == len(standard)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in chat)
    assert [r["messages"][0]["content"] for r in chat] == [r["prompt"] for r in standard]
    assert run("export", str(injected), "-f", "alpaca", "--chat").exit_code == 2


def test_cot_is_the_full_corrected_chain_once(injected: Path, grader: Grader) -> None:
    """Two mistakes in one gold solution have the same corrected chain: one CoT row, the
    other counted as a duplicate."""
    result = run("export", str(injected), "-f", "cot")
    assert result.exit_code == 0, result.stderr
    rows = records(result)
    source = [r for r in load_jsonl(injected)]
    chains = {(r["question"], tuple(r["original"]["steps"][: r["incorrect_step"] - 1]
                                    + r["corrected_steps"])) for r in source}  # fmt: skip
    assert len(rows) == len(chains) < len(source)
    assert len({(r["prompt"], r["completion"]) for r in rows}) == len(rows)
    assert f"dropped duplicate {len(source) - len(rows)}" in result.stderr
    by_question = {LEMA_COT_PROMPT.format(question=r["question"]): r for r in source}
    for row in rows:
        record = by_question[row["prompt"]]
        assert grader.grade("gsm8k", record["gold"], row["completion"]).verdict == "correct"


def test_prm_labels_steps_through_the_incorrect_one(injected: Path, grader: Grader) -> None:
    source = load_jsonl(injected)
    rows = export(injected, "-f", "prm")
    mistakes = [r for r in rows if not all(r["labels"])]
    correct = [r for r in rows if all(r["labels"])]
    assert len(mistakes) == len(source)
    solutions = {(r["id"], tuple(r["original"]["steps"][: r["incorrect_step"] - 1]
                                 + r["corrected_steps"])) for r in source}  # fmt: skip
    assert len(correct) == len({s[1] for s in solutions}) > 20
    for row, record in zip(mistakes, source, strict=True):
        assert set(row) == {"prompt", "completions", "labels"}
        assert row["prompt"] == record["question"]
        k = record["incorrect_step"]
        assert row["completions"] == record["original"]["steps"][:k]
        assert row["labels"] == [True] * (k - 1) + [False]
    for row in correct:
        assert len(row["labels"]) == len(row["completions"]) > 1
        answer = row["completions"][-1]
        gold = next(r["gold"] for r in source if r["question"] == row["prompt"])
        assert grader.grade("gsm8k", gold, answer).verdict == "correct"


def test_prm_takes_correct_samples_and_sets_wrong_ones_aside(corrections: Path) -> None:
    result = run("export", str(corrections), "-f", "prm")
    rows = records(result)
    # 20 kept corrections (one false-ending row each), 20 correct samples, and the corrected
    # solutions that differ from them, all true
    assert sum(not all(r["labels"]) for r in rows) == 20
    assert sum(all(r["labels"]) for r in rows) >= 20
    assert "uncorrected_sample" not in result.stderr


def test_math_shepherd_tags_each_step(injected: Path) -> None:
    prm = export(injected, "-f", "prm")
    rows = export(injected, "-f", "math-shepherd")
    assert len(rows) == len(prm) > 60
    for row, labelled in zip(rows, prm, strict=True):
        assert row["task"] == "GSM8K"
        assert row["input"].startswith(labelled["prompt"] + " Step 1: ")
        assert row["input"].count(" ки") == len(labelled["completions"])
        lines = row["input"][len(labelled["prompt"]) + 1 :].split("\n")
        assert lines == [f"Step {i}: {step} ки"
                         for i, step in enumerate(labelled["completions"], 1)]  # fmt: skip
        parts = row["input"].split(" ки")
        marks = [" +" if good else " -" for good in labelled["labels"]]
        assert row["label"] == "".join(p + m for p, m in zip(parts, [*marks, ""], strict=True))


def test_math_shepherd_has_one_line_per_math_step(tmp_path: Path) -> None:
    """MATH steps may hold line breaks (`align*` blocks, figures): one line per step anyway."""
    made = run("inject", str(DATA / "math500_slice.jsonl"), "--per-question", "3", "-q")
    assert made.exit_code == 0, made.stderr
    path = tmp_path / "injected.jsonl"
    path.write_text(made.stdout)
    multiline = sum(
        any("\n" in s for s in r["original"]["steps"][: r["incorrect_step"]]) for r in records(made)
    )
    assert multiline >= 5  # the slice does have steps with line breaks
    prm = export(path, "-f", "prm")
    rows = export(path, "-f", "math-shepherd")
    assert len(rows) == len(prm) > 40
    for row, labelled in zip(rows, prm, strict=True):
        assert row["task"] == "MATH"
        lines = row["input"][len(labelled["prompt"]) + 1 :].split("\n")
        assert len(lines) == len(labelled["completions"])
        assert [line.split(": ", 1)[0] for line in lines] == [
            f"Step {i}" for i in range(1, len(lines) + 1)
        ]
        assert all(line.endswith(" ки") for line in lines)
        assert row["label"].count("\n") == len(lines) - 1


def test_preference_pairs(corrections: Path, grader: Grader) -> None:
    rows = export(corrections, "-f", "dpo", "--max-pairs-per-question", "3")
    assert len(rows) == 30
    gold = {r["question"]: r["gold"] for r in load_jsonl(corrections)}
    per_question: dict[str, int] = {}
    for row in rows:
        assert set(row) == {"prompt", "chosen", "rejected"}
        question = row["prompt"].split("Question: ", 1)[1].split("\nAnswer: ", 1)[0]
        per_question[question] = per_question.get(question, 0) + 1
        assert grader.grade("gsm8k", gold[question], row["chosen"]).verdict == "correct"
        assert grader.grade("gsm8k", gold[question], row["rejected"]).verdict == "wrong"
    # Per question: 2 right + 2 wrong samples, 2 corrections -> capped at 3.
    assert set(per_question.values()) == {3}
    assert len(per_question) == 10

    openai_rows = export(corrections, "-f", "openai-dpo", "--max-pairs-per-question", "3")
    assert len(openai_rows) == len(rows)
    for pair, row in zip(openai_rows, rows, strict=True):
        assert set(pair) == {"input", "preferred_output", "non_preferred_output"}
        assert pair["input"]["messages"] == [{"role": "user", "content": row["prompt"]}]
        assert pair["preferred_output"] == [{"role": "assistant", "content": row["chosen"]}]
        assert pair["non_preferred_output"] == [{"role": "assistant", "content": row["rejected"]}]


def test_mix_shuffles_cot_and_corrections_with_a_seed(corrections: Path) -> None:
    first = run("export", str(corrections), "-f", "openai", "--mix", "--seed", "1").stdout
    again = run("export", str(corrections), "-f", "openai", "--mix", "--seed", "1").stdout
    other = run("export", str(corrections), "-f", "openai", "--mix", "--seed", "2").stdout
    assert first == again
    assert first != other
    assert sorted(first.splitlines()) == sorted(other.splitlines())
    rows = [json.loads(line) for line in first.splitlines()]
    prompts = [r["messages"][0]["content"] for r in rows]
    cot = sum(p.startswith("Please solve the following math problem.") for p in prompts)
    fixes = sum(p.endswith("\nIncorrect Step:") for p in prompts)
    assert (cot, fixes) == (20, 20)  # 2 correct samples and 2 corrections per problem
    assert prompts[:20].count(prompts[0]) < 20  # interleaved, not one block then the other
    assert run("export", str(corrections), "-f", "dpo", "--mix").exit_code == 2


def test_dropped_corrections_are_counted(corrections: Path, tmp_path: Path) -> None:
    rows = load_jsonl(corrections)
    broken = [dict(r, verdict="wrong") if "correction_id" in r else r for r in rows]
    path = write_jsonl(tmp_path / "broken.jsonl", broken)
    result = run("export", str(path), "-f", "alpaca")
    assert records(result) == []
    assert "dropped correct_sample 20, wrong_answer 20" in result.stderr


# ---------------------------------------------------------------- decontamination


def test_filter_decontaminates_against_test_sets(injected: Path, tmp_path: Path) -> None:
    training = load_jsonl(injected)
    questions = list(dict.fromkeys(r["question"] for r in training))
    # A "test set" holding 3 of the questions verbatim and 1 with one word changed.
    words = questions[3].split()
    edited = " ".join([*words[:-3], "seven", *words[-2:]])
    test = write_jsonl(tmp_path / "test.jsonl", [{"question": q} for q in questions[:3]] + [
        {"question": edited}])  # fmt: skip
    math = str(DATA / "math500_slice.jsonl")  # a second, unrelated test set
    rejects = tmp_path / "rejects.jsonl"
    result = run("filter", str(injected), "--decontaminate", str(test), "--decontaminate", math,
                 "--rejects", str(rejects))  # fmt: skip
    assert result.exit_code == 0
    kept = records(result)
    dropped = [json.loads(line) for line in rejects.read_text().splitlines()]
    leaked = {r["record"]["question"] for r in dropped if r["reason"] == "contaminated"}
    assert leaked == set(questions[:4])
    hit = sum(r["question"] in leaked for r in training)
    assert all("overlaps " in r["detail"] for r in dropped)
    assert any("(exact)" in r["detail"] for r in dropped)
    assert any("-grams)" in r["detail"] for r in dropped)
    assert len(kept) == len(training) - hit
    assert f"contaminated {hit}" in result.stderr
    clean = run("filter", str(injected), "--decontaminate", math, "-q")
    assert len(records(clean)) == len(training)


# ---------------------------------------------------------------- the trainers' loader


@pytest.mark.parametrize("fmt", ["lema", "alpaca", "sharegpt", "openai", "trl", "trl-chat", "dpo",
                                 "openai-dpo", "cot", "lemma", "prm", "math-shepherd"])  # fmt: skip
def test_trainers_loader_reads_every_format(
    fmt: str, corrections: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRL, LLaMA-Factory and axolotl all read JSONL through Hugging Face `datasets`; load each
    file with it and check the columns and nested types a trainer will see."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets  # a dev dependency: the loader the trainers use

    args = ["-f", "trl", "--chat"] if fmt == "trl-chat" else ["-f", fmt]
    out = tmp_path / f"{fmt}.jsonl"
    assert run("export", str(corrections), *args, "-o", str(out), "-q").exit_code == 0
    rows = load_jsonl(out)
    data = datasets.load_dataset("json", data_files=str(out), split="train",
                                 cache_dir=str(tmp_path / "cache"))  # fmt: skip
    assert data.num_rows == len(rows) > 0
    assert set(data.column_names) == set(rows[0])
    assert data[0] == rows[0]
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    expected = {
        "lema": {"prompt": datasets.Value("string"), "completion": datasets.Value("string")},
        "alpaca": {"instruction": datasets.Value("string"), "input": datasets.Value("string"),
                   "output": datasets.Value("string")},
        "sharegpt": {"conversations": datasets.List({"from": datasets.Value("string"),
                                                     "value": datasets.Value("string")})},
        "openai": {"messages": datasets.List(message)},
        "trl-chat": {"messages": datasets.List(message)},
        "dpo": {"prompt": datasets.Value("string"), "chosen": datasets.Value("string"),
                "rejected": datasets.Value("string")},
        "openai-dpo": {"input": {"messages": datasets.List(message)},
                       "preferred_output": datasets.List(message),
                       "non_preferred_output": datasets.List(message)},
    }  # fmt: skip
    expected["trl"] = expected["cot"] = expected["lema"]
    expected["lemma"] = expected["alpaca"]
    expected["prm"] = {"prompt": datasets.Value("string"),  # TRL's stepwise supervision
                       "completions": datasets.List(datasets.Value("string")),
                       "labels": datasets.List(datasets.Value("bool"))}  # fmt: skip
    expected["math-shepherd"] = {name: datasets.Value("string")
                                 for name in ("input", "label", "task")}  # fmt: skip
    assert data.features == datasets.Features(expected[fmt])


# ---------------------------------------------------------------- the rejected pool


def _as_pair(fmt: str, row: dict[str, Any]) -> tuple[str, str, str]:
    if fmt == "dpo":
        return row["prompt"], row["chosen"], row["rejected"]
    (user,) = row["input"]["messages"]
    (preferred,) = row["preferred_output"]
    (non_preferred,) = row["non_preferred_output"]
    return user["content"], preferred["content"], non_preferred["content"]


@pytest.mark.parametrize("fmt", ["dpo", "openai-dpo"])
@pytest.mark.parametrize("order", ["samples-first", "corrections-first"])
def test_a_wrong_sample_is_rejected_once_however_often_it_appears(
    fake: FakeOpenAI, tmp_path: Path, fmt: str, order: str
) -> None:
    """`sample --keep all` output together with `correct -n 3` output: each wrong sample is in
    the input once as a sample and three times as the original of a correction. It enters the
    rejected pool once, so per question: each wrong sample against its kept fix, then each
    wrong sample against one correct sample; no extra pairs and none pushed out by the cap."""
    fake.tag_samples = True
    sampled = run("sample", GSM8K, "-m", "r", "-n", "4", "--keep", "all", *endpoint(fake))
    corrected = run("correct", "-m", "c", "-n", "3", *endpoint(fake), input=sampled.stdout)
    assert sampled.exit_code == corrected.exit_code == 0
    samples, outputs = records(sampled), records(corrected)
    corrections = [r for r in outputs if "correction_id" in r]
    # 10 questions x (2 right + 2 wrong samples); 3 identical corrections per wrong sample.
    assert len(samples) == 40
    assert len(corrections) == 60
    text = sampled.stdout + corrected.stdout
    if order == "corrections-first":
        text = corrected.stdout + sampled.stdout
    path = tmp_path / "all.jsonl"
    path.write_text(text, encoding="utf-8")

    prompt = {r["id"]: LEMA_COT_PROMPT.format(question=r["question"]) for r in samples}
    right: dict[str, set[str]] = {qid: set() for qid in prompt}
    wrong: dict[str, set[str]] = {qid: set() for qid in prompt}
    for sample in samples:
        (right if sample["verdict"] == "correct" else wrong)[sample["id"]].add(
            " ".join(sample["steps"])
        )
    fixes: dict[str, set[tuple[str, str]]] = {qid: set() for qid in prompt}
    for c in corrections:
        assert c["elided"]
        original = c["original"]["steps"]
        fixed = original[: c["corrected_from"] - 1] + c["corrected_steps"]
        fixes[c["id"]].add((" ".join(fixed), " ".join(original)))
    assert all(len(right[q]) == len(wrong[q]) == len(fixes[q]) == 2 for q in prompt)

    for cap in ([], ["--max-pairs-per-question", "4"]):
        pairs = [_as_pair(fmt, row) for row in export(path, "-f", fmt, *cap)]
        assert len(pairs) == 40, cap
        for qid in prompt:
            mine = [(chosen, rejected) for p, chosen, rejected in pairs if p == prompt[qid]]
            assert len(mine) == 4, cap
            assert set(mine[:2]) == fixes[qid]  # the kept corrections against their originals
            assert all(chosen in right[qid] for chosen, _ in mine[2:])
            assert sorted(rejected for _, rejected in mine[2:]) == sorted(wrong[qid])
