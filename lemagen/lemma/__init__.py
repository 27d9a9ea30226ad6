"""LEMMA: "Learning from Errors for MatheMatical Advancement" (Pan et al., 2025, arXiv
2503.17439).

An analyser labels each wrong sample with its first erroneous step and error type from LEMMA's
taxonomy (`analyze`); a teacher model puts one mistake of a chosen type into a gold solution
(`teacher`, the `inject --model` path); a wrong solution is cut after its first incorrect step
and continued by a correct one (`trajectories`), and a model rewrites such trajectories
fluently (`smooth`). What analysers and teachers reply is read in `replies`.
"""
