"""LEMA: "Learning From Mistakes Makes LLM Better Reasoner" (An et al., 2023, arXiv
2310.20689).

Wrong chains of thought are sampled from reasoners (`sample`), a corrector names the incorrect
step, explains it and writes a corrected solution (`correct`, its replies read by `replies`),
corrections that reach the gold answer are kept as fine-tuning records in LEMA's formats
(`filter`, `formats`), the dataset's own solutions are rendered as LEMA trains on them
(`gold_cot`), and correction-centric evolution makes new questions from corrected ones
(`evolve`).
"""
