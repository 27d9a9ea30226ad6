"""Mistakes made without a model (`lemagen inject`): one wrong step put into a gold solution,
for GSM8K-style text (`gsm8k`) and MATH's LaTeX (`latex`), written as LEMA corrections
(`inject`) or as retry data: a mistake, a `[BACK]` marker and the right step in one text, after
"Physics of Language Models: Part 2.2, How to Learn From Mistakes on Grade-School Math
Problems" (Ye, Xu, Li and Allen-Zhu, 2024, arXiv 2408.16293) (`retry`).

A teacher model that inserts the mistake instead (`inject --model`) is LEMMA's, in
`lemagen.lemma.teacher`.
"""
