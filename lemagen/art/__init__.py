"""ART: "The ART of LLM Refinement: Ask, Refine, and Trust" (Shridhar et al., NAACL 2024,
arXiv 2311.07961): training data for the Asker, which decides from sub-questions whether a
solution needs refining (`lemagen art ask`), and the Truster, which ranks a solution against
its refinement (`lemagen art trust`); both in `art`, the askers' replies read in `replies`.
"""
