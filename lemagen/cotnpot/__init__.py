"""CoTnPoT / Math-Rev: "Improving LLM Reasoning through Scaling Inference Computation with
Collaborative Verification" (Liang et al., 2024, arXiv 2410.05318). A chain of thought is
rewritten as a program (program of thought) by a coder model (`crosscheck`), the program runs
in a sandbox (`sandbox`, whose first code is `_child`), and its printed answer is compared with
the chain of thought's (`programs`).
"""
